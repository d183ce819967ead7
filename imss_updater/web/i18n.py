"""The console's texts in English and Japanese, as plain data.

``translate(language, key, **values)`` returns the text for ``key`` in ``language`` with
``{name}`` placeholders filled in. Every key exists in both languages (a test checks it);
Japanese wording follows the SPEC where it gives one (「不明」, the lock message).
"""

from __future__ import annotations

from collections.abc import Mapping

from imss_updater.lock import LOCK_MESSAGE_EN, LOCK_MESSAGE_JA

LANGUAGES = ("en", "ja")
DEFAULT_LANGUAGE = "en"

TEXTS: Mapping[str, tuple[str, str]] = {
    # chrome
    "app.title": ("IMSS Component Update", "IMSSコンポーネントのアップデート"),
    "nav.status": ("System Status", "システムステータス"),
    "nav.logs": ("Logs", "ログ"),
    "nav.settings": ("Settings", "設定"),
    "nav.logout": ("Log Off", "ログオフ"),
    "nav.language": ("Language", "言語"),
    "lang.en": ("English", "English"),
    "lang.ja": ("日本語", "日本語"),
    "button.switch": ("Switch", "切り替え"),
    # login
    "login.title": ("Administrator Log On", "管理者ログオン"),
    "login.password": ("Password", "パスワード"),
    "login.submit": ("Log On", "ログオン"),
    "login.failed": ("Incorrect password.", "パスワードが正しくありません。"),
    "login.throttled": (
        "Too many failed log-on attempts. Try again in {minutes} minutes.",
        "ログオンの失敗が多すぎます。{minutes}分後に再度お試しください。",
    ),
    "login.no_password": (
        "No administrator password is set. Set one on the gateway with:",
        "管理者パスワードが設定されていません。ゲートウェイで次のコマンドを実行して設定してください:",
    ),
    "login.required": ("Please log on.", "ログオンしてください。"),
    "logout.done": ("You have logged off.", "ログオフしました。"),
    # status page
    "status.title": ("System Status", "システムステータス"),
    "status.components": ("Components", "コンポーネント"),
    "status.component": ("Component", "コンポーネント"),
    "status.current": ("Current Version", "現在のバージョン"),
    "status.available": ("Available Version", "利用可能なバージョン"),
    "status.last_update": ("Last Update", "最終アップデート"),
    "status.flags": ("Notes", "備考"),
    "status.progress": ("Progress", "進行状況"),
    "status.unknown": ("Unknown", "不明"),
    "status.none": ("(none)", "(なし)"),
    "status.never": ("Never", "なし"),
    "status.update": ("Update", "アップデート"),
    "status.rollback": ("Rollback", "ロールバック"),
    "status.check_now": ("Check Now", "今すぐ確認"),
    "status.select_all": ("Select all", "すべて選択"),
    "status.last_check": ("Last check", "最終確認"),
    "status.last_run": ("Last update run", "最終アップデート実行"),
    "status.scan_service": ("Scan service", "検索サービス"),
    "status.policy_service": ("Policy service", "ポリシーサービス"),
    "status.service_unknown": ("No restart recorded", "再起動の記録なし"),
    "status.service_restarted": ("Restarted {time}", "{time}に再起動しました"),
    "status.service_failed": ("Restart failed: {reason}", "再起動に失敗しました: {reason}"),
    "status.check_ok": ("Update source reachable", "アップデート元に接続できました"),
    "status.check_failed": ("Failed: {reason}", "失敗: {reason}"),
    "status.run_ok": ("Succeeded ({kind}): {text}", "成功 ({kind}): {text}"),
    "status.run_failed": ("Failed ({kind}): {text}", "失敗 ({kind}): {text}"),
    "status.lock_held": ("{message} (process {pid})", "{message} (プロセス {pid})"),
    "status.settings_invalid": (
        "The settings are invalid; fix them before updating: {reason}",
        "設定が正しくありません。アップデートの前に修正してください: {reason}",
    ),
    "status.newer": ("newer version available", "新しいバージョンがあります"),
    "flag.unsigned": ("unsigned", "署名なし"),
    "flag.stale": ("not updated for {days} days", "{days}日間アップデートされていません"),
    "flag.unscheduled": ("excluded from scheduled update", "予約アップデートの対象外"),
    "flag.unlicensed": ("license not activated", "ライセンス未アクティベート"),
    "flag.expired": ("license expired", "ライセンス期限切れ"),
    "flag.disabled": ("feature disabled", "機能が無効"),
    "flag.restart_pending": ("restart pending", "再起動待ち"),
    "flag.reenable": ("re-enable", "再有効化"),
    # jobs
    "job.running": ("A {kind} is running…", "{kind}を実行中…"),
    "job.kind.update": ("manual update", "手動アップデート"),
    "job.kind.rollback": ("rollback", "ロールバック"),
    "job.kind.check": ("check", "確認"),
    "job.started": ("Started: {kind}.", "開始しました: {kind}。"),
    "job.nothing_selected": ("Select at least one component.", "コンポーネントを1つ以上選択してください。"),
    "job.update_ok": ("Manual update succeeded.", "手動アップデートが完了しました。"),
    "job.rollback_ok": ("Rollback succeeded.", "ロールバックが完了しました。"),
    "job.update_failed": ("Manual update failed.", "手動アップデートに失敗しました。"),
    "job.rollback_failed": ("Rollback failed.", "ロールバックに失敗しました。"),
    "job.up_to_date": ("All components are up to date.", "すべてのコンポーネントは最新です。"),
    "job.check_ok": ("Check finished: the update source was reachable.",
                     "確認が完了しました: アップデート元に接続できました。"),
    "job.check_failed": ("Check failed: {reason}", "確認に失敗しました: {reason}"),
    "job.error": ("Could not run: {reason}", "実行できませんでした: {reason}"),
    "job.restart_failed": ("Service restart failed: {reason}", "サービスの再起動に失敗しました: {reason}"),
    "job.finished_at": ("finished {time}", "{time}に終了"),
    "lock.busy": (LOCK_MESSAGE_EN, LOCK_MESSAGE_JA),
    "phase.queued": ("waiting", "待機中"),
    "phase.downloading": ("downloading {percent}%", "ダウンロード中 {percent}%"),
    "phase.verifying": ("verifying", "検証中"),
    "phase.installing": ("installing", "インストール中"),
    "phase.restarting": ("restarting services", "サービスを再起動中"),
    "phase.done": ("done", "完了"),
    "phase.failed": ("failed", "失敗"),
    # logs
    "logs.title": ("Update Event Log", "アップデートイベントログ"),
    "logs.time": ("Date/Time", "日時"),
    "logs.kind": ("Type", "種類"),
    "logs.component": ("Component", "コンポーネント"),
    "logs.version": ("Version", "バージョン"),
    "logs.outcome": ("Result", "結果"),
    "logs.message": ("Description", "説明"),
    "logs.all": ("All", "すべて"),
    "logs.from": ("From", "開始日"),
    "logs.to": ("To", "終了日"),
    "logs.filter": ("Display Log", "ログを表示"),
    "logs.empty": ("No events match.", "該当するイベントはありません。"),
    "logs.newer": ("« Newer", "« 新しい"),
    "logs.older": ("Older »", "古い »"),
    "logs.page": ("Page {page}", "{page}ページ"),
    "logs.notifications": ("Notification deliveries", "通知の送信"),
    "logs.notifications_pending": (
        "Notification deliveries will be listed here once notifications are installed.",
        "通知機能が導入されると、ここに通知の送信結果が表示されます。",
    ),
    "kind.scheduled": ("Scheduled", "予約"),
    "kind.manual": ("Manual", "手動"),
    "kind.rollback": ("Rollback", "ロールバック"),
    "outcome.success": ("Success", "成功"),
    "outcome.failure": ("Failure", "失敗"),
    # settings
    "settings.title": ("Settings", "設定"),
    "settings.source": ("Update Source", "アップデート元"),
    "settings.proxy": ("Proxy", "プロキシ"),
    "settings.schedule": ("Scheduled Update", "予約アップデート"),
    "settings.notifications": ("Notifications", "通知"),
    "settings.licenses": ("Licenses", "ライセンス"),
    "settings.save": ("Save", "保存"),
    "settings.saved": ("Settings saved. They take effect at the next check.",
                       "設定を保存しました。次回の確認から有効になります。"),
    "settings.invalid": ("The settings were not saved:", "設定は保存されませんでした:"),
    "settings.secret_set": ("(set — leave empty to keep)", "(設定済み — 変更しない場合は空欄)"),
    "settings.secret_unset": ("(not set)", "(未設定)"),
    "settings.secret_clear": ("Clear", "削除"),
    "source.activeupdate": ("ActiveUpdate server (default)", "ActiveUpdateサーバ (初期設定)"),
    "source.other": ("Other update source (e.g. Control Manager)",
                     "その他のアップデート元 (Control Managerなど)"),
    "source.protocol": ("Protocol", "プロトコル"),
    "source.url": ("URL", "URL"),
    "source.tmase": ("Antispam components (TMASE) source",
                     "スパムメール対策コンポーネント (TMASE) のアップデート元"),
    "source.tmase_same": ("Same as above", "上と同じ"),
    "source.tmase_own": ("This URL:", "次のURL:"),
    "source.verify": ("Signature verification", "署名の検証"),
    "source.verify.yes": ("required", "必須"),
    "source.verify.auto": ("when published", "公開されている場合"),
    "source.verify.no": ("off", "無効"),
    "source.ca_file": ("CA certificates for HTTPS (file, empty = system)",
                       "HTTPS用CA証明書 (ファイル、空欄 = システム)"),
    "source.signature_ca": ("Signature trust anchors (PEM file)", "署名の信頼アンカー (PEMファイル)"),
    "source.max_mb": ("Largest component accepted (MB)", "受け入れる最大コンポーネントサイズ (MB)"),
    "proxy.use": ("Use a proxy server for updates", "アップデートにプロキシサーバを使用する"),
    "proxy.host": ("Proxy server", "プロキシサーバ"),
    "proxy.port": ("Port", "ポート"),
    "proxy.user": ("User name", "ユーザ名"),
    "proxy.password": ("Password", "パスワード"),
    "schedule.enabled": ("Enable scheduled update", "予約アップデートを有効にする"),
    "schedule.frequency": ("Update frequency", "アップデートの頻度"),
    "frequency.15min": ("Every 15 minutes", "15分ごと"),
    "frequency.hourly": ("Hourly", "毎時"),
    "frequency.daily": ("Daily", "毎日"),
    "frequency.weekly": ("Weekly", "毎週"),
    "schedule.minute": ("Minute (hourly)", "分 (毎時)"),
    "schedule.time": ("Time (daily/weekly)", "時刻 (毎日/毎週)"),
    "schedule.weekday": ("Day (weekly)", "曜日 (毎週)"),
    "weekday.sun": ("Sunday", "日曜日"),
    "weekday.mon": ("Monday", "月曜日"),
    "weekday.tue": ("Tuesday", "火曜日"),
    "weekday.wed": ("Wednesday", "水曜日"),
    "weekday.thu": ("Thursday", "木曜日"),
    "weekday.fri": ("Friday", "金曜日"),
    "weekday.sat": ("Saturday", "土曜日"),
    "schedule.components": ("Components to update", "アップデートするコンポーネント"),
    "schedule.components_help": (
        "A component rolled back by hand is taken off this list; tick it again to re-enable it.",
        "手動でロールバックしたコンポーネントはこの一覧から外れます。再度有効にするにはチェックを付けてください。",
    ),
    "notifications.pending": (
        "Notification settings (channels, events, templates, send test) appear here once "
        "notifications are installed.",
        "通知機能が導入されると、ここに通知の設定 (チャネル、イベント、テンプレート、テスト送信) が"
        "表示されます。",
    ),
    "licenses.license": ("License", "ライセンス"),
    "licenses.expiry": ("Expires", "有効期限"),
    "licenses.state": ("Status", "ステータス"),
    "licenses.active": ("Activated", "アクティベート済み"),
    "licenses.expired": ("Expired", "期限切れ"),
    "licenses.not_activated": ("Not activated", "未アクティベート"),
    "licenses.components": ("Components", "コンポーネント"),
    "licenses.features": ("Features", "機能"),
    "licenses.help": (
        "Licenses are changed with `imss-updater config set License <name> YYYY-MM-DD`.",
        "ライセンスは `imss-updater config set License <名前> YYYY-MM-DD` で変更します。",
    ),
    "feature.ATSEEnabled": ("Advanced Threat Scan Engine", "高度な脅威検索エンジン"),
    "feature.SmartScanEnabled": ("Smart scan", "スマートスキャン"),
    "yes": ("Yes", "はい"),
    "no": ("No", "いいえ"),
    # errors
    "error.title": ("Error", "エラー"),
    "error.csrf": (
        "The form has expired or did not come from this console. Reload the page and try again.",
        "フォームの有効期限が切れているか、このコンソールから送信されていません。ページを再読み込みしてやり直してください。",
    ),
    "error.database": ("The database cannot be reached: {reason}", "データベースに接続できません: {reason}"),
    "error.not_found": ("Page not found.", "ページが見つかりません。"),
    "error.method": ("This action cannot be done with this request method.",
                     "このリクエストメソッドではこの操作を実行できません。"),
    "error.bad_request": ("Bad request: {reason}", "不正なリクエスト: {reason}"),
    "error.back": ("Back to System Status", "システムステータスに戻る"),
}


def translate(language: str, key: str, **values: object) -> str:
    """Given a language code and a text key, return the text with ``values`` filled in.

    An unknown language falls back to English; an unknown key is returned as it is, so a
    missing text shows up on the page instead of breaking it.
    """
    texts = TEXTS.get(key)
    if texts is None:
        return key
    text = texts[1] if language == "ja" else texts[0]
    return text.format(**values) if values else text
