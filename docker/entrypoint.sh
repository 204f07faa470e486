#!/bin/sh
# `docker run IMAGE train ...` runs `apt-video train ...`; a program on the PATH runs as given, so that
# `docker run IMAGE torchrun --nproc_per_node 8 -m apt_video.cli train ...` or `ray start` work too.
# Anything else (a subcommand, an option, nothing, a typo) goes to apt-video, which names its commands.
case "$(command -v "${1:-}" 2>/dev/null)" in
  /*) exec "$@" ;;
  *) exec apt-video "$@" ;;
esac
