#!/bin/bash
# netns_agent.sh: the "ssh" of the multi-host test (multihost.sh). mpirun's
# rsh launcher (--mca plm_rsh_agent) starts each remote Open MPI daemon
# with it as it would with ssh:
#
#   netns_agent.sh [ssh options] HOST WORD...
#
# where the WORDs are one command line meant for the remote user's shell
# (Open MPI 4.1 passes " orted" as its first word and quoted values such as
# "env": they must be joined and given to a shell, never exec'd as argv).
# HOST is one of the addresses (or names) of the test's hosts; the agent
# runs the command as sshd on that host would: in that host's network
# namespace, in a UTS namespace of its own that has that host's name:
#
#   ip netns exec NS unshare --uts sh -c 'hostname NAME && exec sh -c "WORDS"'
#
# Each step execs the next. With plm_rsh_no_tree_spawn Open MPI passes
# "orted --daemonize": the daemon then leaves mpirun's process tree (its
# parent becomes init), so multihost.sh finds it by its namespace to clean up.
#
# The hosts come from MPROC_MULTIHOST_HOSTS (set by multihost.sh), words of
# ADDRESS:NAME:NAMESPACE. An unknown host fails with ssh's status 255.
set -euo pipefail

# ssh's options, those that take a value first; none of them is used here
# (Open MPI adds only what plm_rsh_args says), but an agent that takes the
# place of ssh should not mistake one for the host.
while (($# > 0)); do
  case $1 in
    -[BbcDEeFIiJLlmOopQRSWw]) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
if (($# < 2)); then
  echo "netns_agent.sh: usage: netns_agent.sh [ssh options] HOST COMMAND..." >&2
  exit 255
fi
host=${1#*@}  # user@host: the user is ignored (everything runs as root)
shift

for entry in ${MPROC_MULTIHOST_HOSTS:-}; do
  IFS=: read -r address name ns <<<"$entry"
  if [[ $host == "$address" || $host == "$name" ]]; then
    # "$*": the words joined by spaces, as ssh sends them to the remote shell.
    # shellcheck disable=SC2016  # "$1" and "$2" are the inner shell's
    exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$1" && exec sh -c "$2"' sh "$name" "$*"
  fi
done
echo "netns_agent.sh: unknown host '$host' (not in MPROC_MULTIHOST_HOSTS='${MPROC_MULTIHOST_HOSTS:-}')" >&2
exit 255
