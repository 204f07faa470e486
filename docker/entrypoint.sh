#!/bin/sh
# `docker run IMAGE train ...` runs `apt-video train ...` (and so do an option and no argument at all);
# anything else runs as given, so that `docker run IMAGE torchrun --nproc_per_node 8 -m apt_video.cli
# train ...`, `ray start`, `python` or `./script.sh` work too. The subcommands are apt-video's own
# list (apt_video.cli.SUBCOMMANDS), not a copy here.
case "${1:-}" in
  "" | -*) exec apt-video "$@" ;;
esac
if python3 -c 'import sys; from apt_video.cli import SUBCOMMANDS; sys.exit(sys.argv[1] not in SUBCOMMANDS)' "$1"
then
  exec apt-video "$@"
fi
exec "$@"
