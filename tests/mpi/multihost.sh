#!/bin/bash
# multihost.sh: the multi-host test of mproc::mpi (ctest mpi.multihost_3_netns).
# A cluster cannot be assumed in CI, so it makes one on this machine: three
# "hosts" h0, h1, h2, each a network namespace with its own loopback, one
# interface eth0 (10.77.0.1, .2, .3 in 10.77.0.0/24) and, in the processes
# started there, its own host name (a UTS namespace), joined by veth pairs
# to a bridge in a fourth namespace (the "switch"). Nothing is added to the
# root namespace: every link is made inside the test's namespaces.
#
# mpirun runs in h0 (so 10.77.0.1 is its own address: rank 0 runs there,
# beside it) and starts the daemons of h1 and h2 through Open MPI's rsh
# launcher with netns_agent.sh in the place of ssh. The program
# (multihost_main.cpp) then checks from the tasks' answers that they ran on
# the other hosts, and that rank 0 reaches them over TCP.
#
#   multihost.sh PROGRAM [MPIRUN]
#
# PROGRAM gets the hosts as arguments, "h0=10.77.0.1 h1=10.77.0.2 ...".
# MPROC_MULTIHOST_TIME_LIMIT: seconds mpirun may take (default 60).
#
# Exits with the program's status; 77 (ctest's SKIP_RETURN_CODE) if the
# machine cannot make the namespaces (not root, no netns/veth/bridge/UTS
# support); 124 if the run took longer than its time limit. Whatever the
# outcome (failure, timeout, SIGINT/SIGTERM), the EXIT trap kills every
# process left in the test's namespaces and deletes them, and with them the
# veth pairs and the bridge. Names carry this shell's pid, so runs side by
# side never clash; the namespaces of an earlier run that was killed outright
# (SIGKILL: no trap runs) are removed here once their run's pid is gone.
set -euo pipefail

prog=${1:?usage: multihost.sh PROGRAM [MPIRUN]}
mpirun=${2:-mpirun}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Seconds for mpirun: within ctest's TIMEOUT (120), so that the trap runs.
time_limit=${MPROC_MULTIHOST_TIME_LIMIT:-60}

skip() {
  echo "multihost.sh: SKIP: $*" >&2
  exit 77
}

if [[ $(id -u) != 0 ]]; then skip "network namespaces need root"; fi
for tool in ip unshare timeout "$mpirun"; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done

prefix=mproc-mh-$$-
hosts=(h0 h1 h2)
addresses=(10.77.0.1 10.77.0.2 10.77.0.3)
switch=${prefix}sw
made=()       # the namespaces made so far, for the trap
mpirun_pid=

# Kills what is left in a namespace, then deletes it. Deleting a namespace
# that still holds processes only unmounts its name: the namespace, with its
# links, would live on until they exit.
remove_namespace() {
  local ns=$1 pids i
  for i in $(seq 50); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] && break
    # shellcheck disable=SC2086  # one pid a word
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  ip netns delete "$ns" 2>/dev/null || true
}

# shellcheck disable=SC2317  # reached through the trap
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  if [[ -n $mpirun_pid ]] && kill -0 "$mpirun_pid" 2>/dev/null; then
    kill -TERM "$mpirun_pid" 2>/dev/null
    sleep 0.5
    kill -KILL "$mpirun_pid" 2>/dev/null
    wait "$mpirun_pid" 2>/dev/null
  fi
  local ns
  for ns in "${made[@]}"; do remove_namespace "$ns"; done
  [[ -n ${work:-} ]] && rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
# Fatal signals end the script through the EXIT trap (bash would otherwise
# die without running it). `wait` below returns at once on them.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Leftovers of runs killed outright (their shell's pid is gone): their
# namespaces and their folders.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
  if [[ $ns =~ ^mproc-mh-([0-9]+)- ]] && ! kill -0 "${BASH_REMATCH[1]}" 2>/dev/null; then
    echo "multihost.sh: removing namespace $ns of an earlier run that was killed" >&2
    remove_namespace "$ns"
  fi
done
for dir in /tmp/mproc-mh-*-*; do
  if [[ -d $dir && $dir =~ ^/tmp/mproc-mh-([0-9]+)- ]] && ! kill -0 "${BASH_REMATCH[1]}" 2>/dev/null; then
    rm -rf "$dir"
  fi
done

work=$(mktemp -d "/tmp/${prefix}XXXXXX")
# Given to mpirun as the agent: a copy of our own, executable whatever the
# checkout's file modes, at a path without spaces (Open MPI splits the
# agent's value on spaces).
install -m 755 "$here/netns_agent.sh" "$work/netns_agent.sh"

# The switch: a bridge in a namespace of its own.
ip netns add "$switch" 2>/dev/null || skip "cannot make a network namespace (ip netns add $switch failed)"
made+=("$switch")
ip -n "$switch" link set lo up
ip -n "$switch" link add br0 type bridge 2>/dev/null || skip "cannot make a bridge in a network namespace"
ip -n "$switch" link set br0 up

agent_hosts=()
for i in "${!hosts[@]}"; do
  ns=$prefix${hosts[$i]}
  ip netns add "$ns" || skip "cannot make a network namespace (ip netns add $ns failed)"
  made+=("$ns")
  # Both ends made where they belong: eth0 in the host, port$i on the switch.
  ip link add name eth0 netns "$ns" type veth peer name "port$i" netns "$switch" 2>/dev/null ||
    skip "cannot make a veth pair between network namespaces"
  ip -n "$switch" link set "port$i" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "${addresses[$i]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  agent_hosts+=("${addresses[$i]}:${hosts[$i]}:$ns")
done
ip netns exec "$prefix${hosts[0]}" unshare --uts true 2>/dev/null || skip "cannot make a UTS namespace (unshare --uts)"
export MPROC_MULTIHOST_HOSTS="${agent_hosts[*]}"

host_list=$(IFS=,; echo "${addresses[*]/%/:1}")  # 10.77.0.1:1,... : one slot each
program_args=()
for i in "${!hosts[@]}"; do program_args+=("${hosts[$i]}=${addresses[$i]}"); done

echo "multihost.sh: hosts ${agent_hosts[*]}; mpirun --host $host_list" >&2

# Why each flag:
#  --allow-run-as-root          this test runs as root (namespaces need it).
#  --host A:1,B:1,C:1 -n 3      one rank a host, rank 0 on h0 (mpirun's own
#                               address, so launched locally, not by the agent).
#  plm_rsh_agent                netns_agent.sh instead of ssh, for h1 and h2.
#  plm_rsh_no_tree_spawn 1      mpirun launches every daemon itself, from h0;
#                               no daemon on h1 launching h2's.
#  pml ob1, btl tcp,self        point-to-point only over TCP (and to oneself):
#                               not UCX, not shared memory, which could cross
#                               namespaces of one machine through /dev/shm.
#  btl_tcp_if_include,          MPI traffic and Open MPI's own out-of-band
#  oob_tcp_if_include           channel (daemons <-> mpirun) on the test's
#                               subnet only (not loopback).
#  orte_tmpdir_base             the session directories of all three hosts in
#                               this run's folder, deleted by the trap.
#  </dev/null                   nothing to forward to rank 0's stdin.
cd "$work"
# shellcheck disable=SC2016  # "$0" and "$@" are the inner shell's
timeout -k 5 "$time_limit" \
  ip netns exec "$prefix${hosts[0]}" \
  unshare --uts sh -c 'hostname "$0" && exec "$@"' "${hosts[0]}" \
  "$mpirun" --allow-run-as-root \
  --host "$host_list" -n "${#hosts[@]}" \
  --mca plm_rsh_agent "$work/netns_agent.sh" \
  --mca plm_rsh_no_tree_spawn 1 \
  --mca pml ob1 --mca btl tcp,self \
  --mca btl_tcp_if_include 10.77.0.0/24 \
  --mca oob_tcp_if_include 10.77.0.0/24 \
  --mca orte_tmpdir_base "$work" \
  "$prog" "${program_args[@]}" </dev/null &
mpirun_pid=$!
rc=0
wait "$mpirun_pid" || rc=$?
mpirun_pid=
if ((rc == 124)); then echo "multihost.sh: FAIL: mpirun took over ${time_limit}s" >&2; fi
exit "$rc"
