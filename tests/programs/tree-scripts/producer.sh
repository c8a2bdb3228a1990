#!/bin/bash
# producer.sh N: prints "rec I payload-X" for I = 1..N, and waits 10 ms after every 20th record, so that a
# pipeline it feeds runs for a while. The wait is `read -t` on a FIFO nobody writes (a builtin: the
# producer forks nothing).
set -u
n=${1:-3000}
rm -f producer.fifo
mkfifo producer.fifo
exec 3<>producer.fifo
for ((i = 1; i <= n; i++)); do
  printf 'rec %d payload-%d\n' "$i" "$((i * 7919 % 10007))"
  if ((i % 20 == 0)); then read -t 0.01 -u 3 || true; fi
done
