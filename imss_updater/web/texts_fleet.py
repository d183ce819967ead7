"""The texts of the Fleet page and of the logs page's node filter (SPEC 7), in English and
Japanese; merged into ``i18n.TEXTS``."""

from __future__ import annotations

from collections.abc import Mapping

TEXTS: Mapping[str, tuple[str, str]] = {
    "nav.fleet": ("Fleet", "フリート"),
    "fleet.title": ("Fleet: the gateways sharing this database",
                    "フリート: このデータベースを共有するゲートウェイ"),
    "fleet.leader_is": ("The leader is {node}.", "リーダーは {node} です。"),
    "fleet.no_leader": ("No node is the leader.", "リーダーのノードはありません。"),
    "fleet.down_rule": ("A node whose updater missed three heartbeats is shown as down.",
                        "アップデートプログラムのハートビートが3回途絶えたノードは停止と表示されます。"),
    "fleet.node": ("Node", "ノード"),
    "fleet.role": ("Role", "役割"),
    "fleet.role.leader": ("Leader", "リーダー"),
    "fleet.role.member": ("Member", "メンバー"),
    "fleet.heartbeat": ("Heartbeat", "ハートビート"),
    "fleet.up": ("Up", "稼働中"),
    "fleet.down": ("DOWN", "停止"),
    "fleet.ago": ("{age} ago", "{age}前"),
    "fleet.never": ("never", "なし"),
    "fleet.last_check": ("Last check", "最終確認"),
    "fleet.source": ("Update source", "アップデート元"),
    "fleet.source.origin": ("origin", "配信元"),
    "fleet.source.mirror": ("leader's mirror", "リーダーのミラー"),
    "fleet.source.fallback": ("origin (mirror unreachable)", "配信元 (ミラーに接続できません)"),
    "fleet.mirror": ("Mirror URL", "ミラーのURL"),
    "fleet.none": ("not installed", "未インストール"),
    "fleet.behind": ("(behind the leader: {version})", "(リーダーより古い: {version})"),
    "fleet.this_node": ("(this gateway)", "(このゲートウェイ)"),
    "fleet.events_of": ("The events of {node}", "{node} のイベント"),
    "fleet.all_events": ("The events of every node", "すべてのノードのイベント"),
    "fleet.empty": ("No node has registered in this database.",
                    "このデータベースに登録されたノードはありません。"),
    "logs.node": ("Node", "ノード"),
}
