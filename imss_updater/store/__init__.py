"""What is on disk: the installed generations and the download lock."""
