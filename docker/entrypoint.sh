#!/bin/sh
# `docker run IMAGE train ...` runs `apt-video train ...`; any other program runs as given, so that
# `docker run IMAGE torchrun --nproc_per_node 8 -m apt_video.cli train ...` or `ray start` work too.
case "${1:-}" in
  models|probe|synth|train|sweep|export|score|demo|bench|plot|doctor|-h|--help|-v|--verbose|--version|"")
    exec apt-video "$@" ;;
  *)
    exec "$@" ;;
esac
