#!/bin/bash
# .ci/slurm.sh [start|stop|status] - a real single-node SLURM cluster for the sweep tests
# (tests/test_sweep_slurm.py, marked `slurm`). Needs root and Debian/Ubuntu (apt-get).
#   start (default): install slurmctld slurmd slurm-client munge when missing, then start the
#                    cluster with ../shared/tools/slurm/start-slurm.sh (idempotent) and print status
#   stop:            stop only the daemons start-slurm.sh started (../shared/tools/slurm/stop-slurm.sh)
#   status:          scontrol ping + sinfo
# Without ../shared (a user's fresh clone) it says so and exits 0: the slurm tests then skip.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${BENCH_SHARED_DIR:-$HERE/../shared}
TOOLS=$SHARED/tools/slurm
log() { echo "[.ci/slurm.sh] $*" >&2; }

status() {
  if ! command -v scontrol >/dev/null; then log "SLURM not installed"; return 0; fi
  scontrol ping || true
  sinfo 2>/dev/null || true
}

case "${1:-start}" in
  start)
    if [ ! -x "$TOOLS/start-slurm.sh" ] && [ ! -f "$TOOLS/start-slurm.sh" ]; then
      log "skipped: $TOOLS/start-slurm.sh not found (set BENCH_SHARED_DIR); SLURM tests will skip"
      exit 0
    fi
    [ "$(id -u)" = 0 ] || { log "skipped: needs root to install and run slurmctld/slurmd"; exit 0; }
    if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || \
       ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
      log "installing slurmctld slurmd slurm-client munge"
      export DEBIAN_FRONTEND=noninteractive
      # Keep the packages' maintainer scripts from starting daemons (start-slurm.sh does that).
      added=0
      if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added=1; fi
      apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; }
      [ $added = 1 ] && rm -f /usr/sbin/policy-rc.d
    fi
    bash "$TOOLS/start-slurm.sh"
    status
    ;;
  stop)
    if [ -f "$TOOLS/stop-slurm.sh" ]; then bash "$TOOLS/stop-slurm.sh"; else log "skipped: $TOOLS/stop-slurm.sh not found"; fi
    ;;
  status) status ;;
  *) log "usage: $0 [start|stop|status]"; exit 2 ;;
esac
