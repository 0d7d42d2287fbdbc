# Shell helpers shared by the benchmark scripts in this folder (source it).

# wait_port FILE KEY: waits (at most 60 s) until pumptwind's --port_file FILE has KEY=<port>
# and prints the port.
wait_port() {
  for _ in $(seq 1 600); do
    [ -s "$1" ] && grep -q "^$2=" "$1" && { sed -n "s/^$2=//p" "$1"; return 0; }
    sleep 0.1
  done
  echo "no $2 in $1" >&2; return 1
}
