"""Keel's learning algorithms, one readable file each (`keel.rl.ppo`, `keel.rl.qrm`, `keel.rl.dirl`, ...)."""
