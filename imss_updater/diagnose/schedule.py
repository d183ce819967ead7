"""Diagnosis steps 1 and 2 of seed 004 Q8, asked before any network step.

Step 1: is this gateway updating by itself at all: are scheduled updates on, is every
component in use on the schedule (a rollback takes one off it), which components are stale.
Step 2: are the available versions known: has a check ever succeeded, and what the source
offered at the last check (「不明」 Unknown: the source was not reached; 0.0: it does not
carry the component). Read from the database only; nothing is contacted or written.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from imss_updater import overview
from imss_updater.catalog import Component, SourceRole
from imss_updater.database.db import ComponentState, RunStatus
from imss_updater.diagnose.steps import Japanese, Recorder
from imss_updater.run.planner import Availability, is_stale
from imss_updater.run.report import parse_or_none
from imss_updater.run.updater import is_control_manager
from imss_updater.settings import Settings

WEEKDAYS_JA = {"sun": "日曜日", "mon": "月曜日", "tue": "火曜日", "wed": "水曜日", "thu": "木曜日",
               "fri": "金曜日", "sat": "土曜日"}
CONSOLE_SCHEDULE_EN = "the console's Settings > Scheduled Update page"
CONSOLE_SCHEDULE_JA = "管理コンソールの 設定 > 予約アップデート の画面"


def schedule_words(settings: Settings) -> tuple[str, str]:
    """Return the schedule in English and Japanese words (gateway local time)."""
    frequency = settings.schedule_frequency
    time = settings.schedule_time.strftime("%H:%M")
    if frequency == "15min":
        return "every 15 minutes", "15分ごと"
    if frequency == "hourly":
        minute = f"{settings.schedule_minute:02d}"
        return f"every hour at minute {minute}", f"毎時 {minute} 分"
    if frequency == "daily":
        return f"every day at {time} (gateway local time)", f"毎日 {time} (ゲートウェイの現地時刻)"
    weekday = settings.schedule_weekday
    return (f"every {weekday} at {time} (gateway local time)",
            f"毎週{WEEKDAYS_JA.get(weekday, weekday)} {time} (ゲートウェイの現地時刻)")


def in_use(settings: Settings, catalog: Sequence[Component], today: datetime.date) -> list[Component]:
    """The components this gateway updates: licensed and their feature enabled."""
    return [c for c in catalog
            if settings.license_active(c.license, today) and settings.feature_enabled(c.feature)]


def names(components: Sequence[Component], language: str = "en") -> str:
    return (", " if language == "en" else "、").join(
        c.name_ja if language == "ja" else c.name_en for c in components)


class ScheduleChecks(Recorder):
    """Seed 004 Q8 steps 1 and 2 (see the module docstring)."""

    # -- step 1: is the gateway updating by itself? -------------------------------------------

    def check_scheduled_update(self, settings: Settings) -> None:
        if settings.scheduled_update:
            words, words_ja = schedule_words(settings)
            self.add("scheduled update", True, f"on: {words}", ja=Japanese(f"有効: {words_ja}"))
            return
        self.add("scheduled update", False,
                 "off (Update/ScheduledUpdate=no): components are updated only when someone runs "
                 "an update by hand",
                 f"turn it on: tick \"Enable scheduled update\" on {CONSOLE_SCHEDULE_EN}, or run "
                 "`imss-updater config set Update ScheduledUpdate yes`",
                 ja=Japanese("無効 (Update/ScheduledUpdate=no): 手動でアップデートしない限りコンポーネントは"
                             "更新されません",
                             f"{CONSOLE_SCHEDULE_JA}で「予約アップデートを有効にする」を選択するか、"
                             "`imss-updater config set Update ScheduledUpdate yes` を実行してください"))

    def check_scheduled_components(self, settings: Settings, catalog: Sequence[Component]) -> None:
        used = in_use(settings, catalog, self.today)
        off = [c for c in used if c.id not in settings.scheduled_components]
        unused = len(catalog) - len(used)
        note = f"; {unused} not in use (not licensed or disabled)" if unused else ""
        note_ja = f"。{unused} 件は未使用 (ライセンスなし、または無効)" if unused else ""
        if not off:
            self.add("components on the schedule", True,
                     f"all {len(used)} components in use are updated on the schedule{note}",
                     ja=Japanese(f"使用中の {len(used)} 件のコンポーネントはすべて予約アップデートの"
                                 f"対象です{note_ja}"))
            return
        wanted = ",".join(c.id for c in catalog if c.id in settings.scheduled_components or c in off)
        self.add("components on the schedule", False,
                 f"{len(off)} component(s) in use are not updated on the schedule: {names(off)}{note}",
                 f"a rollback takes a component off the schedule: tick it again on "
                 f"{CONSOLE_SCHEDULE_EN}, or run `imss-updater config set Update ScheduledComponents "
                 f"{wanted}`",
                 ja=Japanese(f"使用中の {len(off)} 件のコンポーネントが予約アップデートの対象外です: "
                             f"{names(off, 'ja')}{note_ja}",
                             f"ロールバックしたコンポーネントは予約アップデートの対象から外れます。"
                             f"{CONSOLE_SCHEDULE_JA}で再び選択するか、`imss-updater config set Update "
                             f"ScheduledComponents {wanted}` を実行してください"))

    def check_stale(self, settings: Settings, catalog: Sequence[Component],
                    states: Mapping[str, ComponentState], now: datetime.datetime) -> None:
        stale: list[str] = []
        stale_ja: list[str] = []
        for component in in_use(settings, catalog, self.today):
            state = states.get(component.id)
            last = state.last_success_at if state else None
            limit = settings.stale_after_days.get(component.id)
            if last is None or not is_stale(last, limit, now):
                continue
            amount, unit = overview.age_parts(now - last)
            stale.append(f"{component.name_en} (last updated {last.date().isoformat()}, "
                         f"{overview.age_words(now - last)} ago; Staleness/{component.id}={limit})")
            unit_ja = {"s": "秒", "min": "分", "h": "時間", "days": "日"}[unit]
            stale_ja.append(f"{component.name_ja} (最終アップデート {last.date().isoformat()}、"
                            f"{amount}{unit_ja}前; Staleness/{component.id}={limit})")
        if not stale:
            self.add("stale components", True,
                     "none: every component in use was updated within its Staleness limit "
                     "(or has no limit)",
                     ja=Japanese("なし: 使用中のコンポーネントはすべて Staleness の期限内に"
                                 "アップデートされています"
                                 " (または期限なし)"))
            return
        self.add("stale components", False, f"{len(stale)} not updated for too long: " + "; ".join(stale),
                 "the next steps tell why: are newer versions known (available versions), and can "
                 "the source be reached (the network steps)",
                 ja=Japanese(f"{len(stale)} 件が長期間アップデートされていません: " + "; ".join(stale_ja),
                             "次の手順で原因を切り分けます: 利用可能なバージョンが分かっているか、"
                             "アップデート元に接続できるか (ネットワークの確認) を確認してください"))

    # -- step 2: are the available versions known? --------------------------------------------

    def check_last_check(self, run: RunStatus) -> None:
        if run.last_check_at is None:
            self.add("last check", None,
                     "skipped: no check has run yet, so no available version is known (run "
                     "`imss-updater check`; the network steps below fetch server.ini as a check would)",
                     ja=Japanese("スキップ: まだ一度も確認が実行されていないため、"
                                 "利用可能なバージョンは不明です"
                                 " (`imss-updater check` を実行してください。以下のネットワークの確認で "
                                 "server.ini を取得します)"))
            return
        at = run.last_check_at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        text = run.last_check_text or ""
        if run.last_check_ok:
            self.add("last check", True, f"the last check at {at} succeeded" + (f": {text}" if text else ""),
                     ja=Japanese(f"{at} の最後の確認は成功しました" + (f": {text}" if text else "")))
            return
        self.add("last check", False, f"the last check at {at} failed" + (f": {text}" if text else ""),
                 "the source could not be reached or read: the network steps below show where",
                 ja=Japanese(f"{at} の最後の確認は失敗しました" + (f": {text}" if text else ""),
                             "アップデート元に接続できないか、内容を読めません: 以下のネットワークの確認で"
                             "どこで失敗するかを確認してください"))

    def check_available(self, settings: Settings, catalog: Sequence[Component],
                        states: Mapping[str, ComponentState], run: RunStatus) -> None:
        if run.last_check_at is None:
            self.skip("available versions", "no check has run yet", "まだ確認が実行されていません")
            return
        unknown: list[Component] = []
        absent: list[Component] = []
        absent_noted: list[Component] = []
        newer: list[str] = []
        newer_ja: list[str] = []
        known = 0
        for component in in_use(settings, catalog, self.today):
            state = states.get(component.id)
            status = state.available_status if state else Availability.UNKNOWN
            source = (settings.update_server if component.source is SourceRole.UPDATE
                      else settings.tmase_server)
            if status == Availability.UNKNOWN or state is None:
                unknown.append(component)
            elif status == Availability.ABSENT:
                # 0.0 from a Control Manager means it has not downloaded the component (Q4),
                # unless a Control Manager never carries it; an ActiveUpdate source just does not.
                if is_control_manager(source) and component.on_control_manager:
                    absent.append(component)
                else:
                    absent_noted.append(component)
            else:
                known += 1
                offered = parse_or_none(state.available_version)
                current = parse_or_none(state.current_version)
                if offered is not None and (current is None or offered > current):
                    installed = current.display if current else "-"
                    newer.append(f"{component.name_en} {installed} -> {offered.display}")
                    newer_ja.append(f"{component.name_ja} {installed} -> {offered.display}")
        detail = f"{known} known"
        detail_ja = f"{known} 件は判明"
        if newer:
            detail += "; newer than installed: " + ", ".join(newer)
            detail_ja += "; インストール済みより新しいもの: " + "、".join(newer_ja)
        if absent_noted:
            detail += f"; not carried by the source (0.0): {names(absent_noted)}"
            detail_ja += f"; アップデート元にないもの (0.0): {names(absent_noted, 'ja')}"
        if unknown:
            self.add("available versions", False, f"Unknown for {names(unknown)}; " + detail,
                     "the source was not reached or could not be read at the last check: the network "
                     "steps below (name resolution, proxy, connection, TLS) show where it fails",
                     ja=Japanese(f"不明: {names(unknown, 'ja')}; " + detail_ja,
                                 "最後の確認でアップデート元に接続できませんでした: 以下のネットワークの確認 "
                                 "(名前解決、プロキシ、接続、TLS) でどこで失敗するかを確認してください"))
        elif absent:
            self.add("available versions", False,
                     f"0.0 for {names(absent)}: the Control Manager server offers no version; " + detail,
                     "the Control Manager server has not downloaded these components: review its "
                     "download settings so it downloads every component this gateway uses",
                     ja=Japanese(f"0.0: {names(absent, 'ja')} "
                                 "(Control Manager サーバにバージョンがありません); "
                                 + detail_ja,
                                 "Control Manager サーバがこれらのコンポーネントをダウンロードしていません。"
                                 "Control Manager サーバのダウンロード設定を見直してください"))
        else:
            hint = ("the update runs at the next scheduled time, or now with `imss-updater update`; if a "
                    "newer version is never installed, collect `imss-updater logs` and `imss-updater "
                    "status` for support" if newer else "")
            self.add("available versions", True, detail, hint,
                     ja=Japanese(detail_ja, "次の予約アップデートで、または `imss-updater update` で今すぐ"
                                 "アップデートされます" if newer else ""))
