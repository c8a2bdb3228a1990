#!/bin/bash
# loops.sh N: N rounds of loops, subshells, command substitutions and pipelines. Each round I prints
# "round I sq=I*I inner=4I+10 code=I%7 total=..." on stdout, and a subshell appends "sub I" to rounds.log.
# One subshell of each round waits 100 ms (`read -t` on a FIFO nobody writes) and hands its exit code back.
# At the end: "DONE rounds=N total=T".
set -u
n=${1:-40}
rm -f loops.fifo
mkfifo loops.fifo
exec 3<>loops.fifo
total=0
for ((i = 1; i <= n; i++)); do
  sq=$((i * i))
  inner=$(for j in 1 2 3 4; do echo $((i + j)); done | awk '{ s += $1 } END { print s }')
  ( echo "sub $i" ) >> rounds.log
  ( read -t 0.1 -u 3 || true; exit $((i % 7)) )
  code=$?
  total=$((total + inner))
  echo "round $i sq=$sq inner=$inner code=$code total=$total"
done
echo "DONE rounds=$n total=$total"
