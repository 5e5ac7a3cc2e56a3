#!/bin/sh
# /init of the e2e test guest (busybox, PID 1). The kernel command line drives it:
#   e2e.ip=10.200.0.2/30   eth0's address
#   e2e.script=BASE64      the case's shell script (base64, no spaces); it runs once eth0 is up,
#                          with the helpers below defined, and its exit status is the result
# It prints 'E2E-RESULT: PASS|FAIL' on the serial console and powers off.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "E2E: $* uptime=$(up)"; }
finish() {
  say "result $1"
  echo "E2E-RESULT: $1"
  sync
  poweroff -f
  sleep 5
  echo o > /proc/sysrq-trigger
}
# wait_peer HOST SECONDS: ping until HOST answers once
wait_peer() {
  i=0
  while [ $i -lt "$2" ]; do
    ping -c 1 -W 1 "$1" >/dev/null 2>&1 && { say "peer $1 answered after $i tries"; return 0; }
    i=$((i + 1))
  done
  say "peer $1 silent for $2 tries"
  return 1
}
# listen_count PORT: accept one TCP connection on PORT and print the bytes received until EOF
# (busybox nc quits at stdin EOF, so its stdin is an open fifo)
listen_count() {
  [ -p /tmp/nofin ] || mkfifo /tmp/nofin
  timeout 120 nc -l -p "$1" 3<>/tmp/nofin <&3 | wc -c
}
say "init started"
ip=10.200.0.2/30 script=
for w in $(cat /proc/cmdline); do
  case "$w" in
    e2e.ip=*) ip=${w#*=} ;;
    e2e.script=*) script=${w#*=} ;;
  esac
done
for m in $(cat /modules/order); do insmod "/modules/$m" || say "insmod $m failed"; done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -e /sys/class/net/eth0 ] || { say "no eth0"; finish FAIL; }
ip link set lo up
ip addr add "$ip" dev eth0
ip link set eth0 up
say "eth0 up mac=$(cat /sys/class/net/eth0/address) queues=$(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
echo "$script" | base64 -d > /tmp/case.sh
if . /tmp/case.sh; then finish PASS; else finish FAIL; fi
