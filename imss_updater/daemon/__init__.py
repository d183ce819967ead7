"""``imss-updater run``: the loop, its schedule and systemd notifications."""
