"""imss-updater: keeps a mail gateway's scan components up to date."""
