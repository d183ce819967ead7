"""The texts of the status page's overview (schedule, daemon, licences, services) and of the
history page, in English and Japanese; merged into ``i18n.TEXTS``."""

from __future__ import annotations

from collections.abc import Mapping

TEXTS: Mapping[str, tuple[str, str]] = {
    # the overview on the status page
    "overview.schedule": ("Scheduled update", "予約アップデート"),
    "overview.schedule_off": ("Off (Update/ScheduledUpdate = no)", "無効 (Update/ScheduledUpdate = no)"),
    "overview.schedule_on": ("On: {words}", "有効: {words}"),
    "overview.schedule_invalid": ("Unknown: the settings are invalid", "不明: 設定が正しくありません"),
    "overview.settings_invalid": ("the settings are invalid", "設定が正しくありません"),
    "schedule.15min": ("every 15 minutes", "15分ごと"),
    "schedule.hourly": ("every hour at minute {minute}", "毎時{minute}分"),
    "schedule.daily": ("every day at {time} (gateway local time, {zone})",
                       "毎日 {time} (ゲートウェイの現地時刻、{zone})"),
    "schedule.weekly": ("every {weekday} at {time} (gateway local time, {zone})",
                        "毎週{weekday} {time} (ゲートウェイの現地時刻、{zone})"),
    "overview.next_run": ("Next scheduled run", "次回の予約アップデート"),
    "overview.next_run_none": ("Not planned", "予定なし"),
    "overview.daemon": ("Updater", "アップデートプログラム"),
    "overview.daemon_alive": ("Running (process {pid}, last heartbeat {age} ago, {time})",
                              "実行中 (プロセス {pid}、最終ハートビート {age}前、{time})"),
    "overview.daemon_dead": ("The updater is not running (last heartbeat {time})",
                             "アップデートプログラムが実行されていません (最終ハートビート {time})"),
    "overview.lock": ("Download lock", "ダウンロードロック"),
    "overview.lock_free": ("Free", "空き"),
    "overview.lock_held": ("Held by process {pid}: an update is in progress",
                           "プロセス {pid} が保持中: アップデート実行中"),
    "overview.licenses": ("Licenses", "ライセンス"),
    "overview.license_active": ("{name}: valid until {date} ({days} days left)",
                                "{name}: {date}まで有効 (残り{days}日)"),
    "overview.license_expiring": ("{name}: expires on {date}, in {days} days: renew it",
                                  "{name}: {date}に期限切れ (残り{days}日)。更新してください"),
    "overview.license_expired": ("{name}: expired on {date}", "{name}: {date}に期限切れ"),
    "overview.license_inactive": ("{name}: not activated", "{name}: 未アクティベート"),
    "overview.service_running": ("Running", "実行中"),
    "overview.service_stopped": ("Stopped", "停止"),
    "overview.service_unknown": ("Unknown ({reason})", "不明 ({reason})"),
    "overview.service_state": ("State", "状態"),
    "overview.service_restart": ("Last restart", "最終再起動"),
    "age.s": ("{amount} s", "{amount}秒"),
    "age.min": ("{amount} min", "{amount}分"),
    "age.h": ("{amount} h", "{amount}時間"),
    "age.days": ("{amount} days", "{amount}日"),
    "status.ago": ("{age} ago", "{age}前"),
    "flag.signed_before": ("signed before: unsigned packages are refused",
                           "署名済み: 署名なしのパッケージは拒否されます"),
    # history
    "nav.history": ("History", "履歴"),
    "history.title": ("Component History", "コンポーネントの履歴"),
    "history.intro": (
        "Every version each component had: when the update source first offered it (as a check"
        " saw it) and when this gateway installed it.",
        "各コンポーネントのすべてのバージョン: アップデート元で最初に確認された日時と、"
        "このゲートウェイにインストールされた日時です。",
    ),
    "history.version": ("Version", "バージョン"),
    "history.first_seen": ("First seen at the source", "アップデート元で最初に確認"),
    "history.installed": ("Installed", "インストール"),
    "history.delay": ("Behind the source by", "アップデート元からの遅れ"),
    "history.not_installed": ("Not installed", "未インストール"),
    "history.not_seen": ("Not recorded", "記録なし"),
    "history.current": ("current", "現在"),
    "history.empty": ("No version recorded yet.", "記録されたバージョンはまだありません。"),
    "status.history_link": ("Version history of every component", "全コンポーネントのバージョン履歴"),
}
