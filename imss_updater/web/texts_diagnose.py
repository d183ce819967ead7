"""The texts of the Diagnose page, in English and Japanese; merged into ``i18n.TEXTS``.
(The steps' own names, details and hints come from ``diagnose`` in both languages.)"""

from __future__ import annotations

from collections.abc import Mapping

TEXTS: Mapping[str, tuple[str, str]] = {
    "nav.diagnose": ("Diagnose", "診断"),
    "diagnose.title": ("Diagnose", "診断"),
    "diagnose.intro": (
        "Checks, in the order support asks for them (seed 004 Q8): whether scheduled updates run"
        " and which components fall behind, whether the available versions are known, then the"
        " connection to each update source, the download lock and the services. Nothing is"
        " changed. Each network step waits at most {seconds} s.",
        "サポートが確認を依頼する順序 (製品 Q&A Q8) で確認します: 予約アップデートが実行されるか、"
        "更新が遅れているコンポーネントはないか、利用可能なバージョンが分かっているか、次に各アップデート元への"
        "接続、ダウンロードのロック、サービスの状態です。設定は変更しません。ネットワークの確認は1件あたり"
        "最大 {seconds} 秒待ちます。",
    ),
    "diagnose.run": ("Run Diagnosis", "診断を実行"),
    "diagnose.step": ("Step", "確認項目"),
    "diagnose.result": ("Result", "結果"),
    "diagnose.detail": ("Detail", "詳細"),
    "diagnose.hint": ("What to do", "対処方法"),
    "diagnose.passed": ("All checks passed.", "すべての確認に合格しました。"),
    "diagnose.failed": ("{count} check(s) failed.", "{count} 件の確認が失敗しました。"),
    "diagnose.busy": (
        "A diagnosis is already running. Try again when it has finished.",
        "診断はすでに実行中です。終了してから再度実行してください。",
    ),
    "diagnose.cli": ("On the gateway, the same steps: {command}",
                     "ゲートウェイでは次のコマンドで同じ確認を実行できます: {command}"),
    "result.PASS": ("PASS", "合格"),
    "result.FAIL": ("FAIL", "失敗"),
    "result.SKIP": ("SKIP", "スキップ"),
}
