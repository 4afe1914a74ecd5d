#!/usr/bin/env bash
# Resident memory of a real node holding a watchlist of ENTRIES entries (default 1,000,000).
#
# Writes a synthetic Denied Persons List of unique made-up names, creates a node in a scratch
# directory, publishes the list with `entente watchlist import` (the node stopped), starts
# `entente serve`, waits for its screening index, screens a few names through the command,
# and prints the serve process's VmRSS and VmHWM. Uses target/release/entente: run
# `cargo build --release` first. The scratch directory (about 1 GB for a million entries)
# is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
entries=${ENTRIES:-1000000}
bin=$PWD/target/release/entente
scratch=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$scratch"' EXIT

awk -v n="$entries" 'BEGIN {
  srand(7)
  split("ka ro mi zan tel vor shi dan qu lem bra sto nik ov ar el ya gul fer pax", s, " ")
  print "\"Name\"\t\"Street_Address\"\t\"City\"\t\"State\"\t\"Country\"\t\"Postal_Code\"\t\"Effective_Date\"\t\"Expiration_Date\"\t\"Standard_Order\"\t\"Last_Update\"\t\"Action\"\t\"FR_Citation\"\r"
  for (i = 0; i < n; i++) {
    name = ""
    for (w = 0; w < 3; w++) {
      for (k = 0; k < 2 + w % 2; k++) name = name toupper(s[int(rand() * 20) + 1])
      name = name " "
    }
    printf "\"%s%d\"\t\"1 MAIN STREET\"\t\"BERLIN\"\t\"\"\t\"DE\"\t\"10115\"\t\"01/02/2020\"\t\"01/02/2030\"\t\"Y\"\t\"2023-01-01\"\t\"FR NOTICE ADDED\"\t\"85 F.R. 1234\"\r\n", name, i
  }
}' > "$scratch/dpl.txt"

"$bin" init --dir "$scratch/node" --agency US-BIS --listen 127.0.0.1:0 > /dev/null
config=$scratch/node/entente.toml
start=$(date +%s%N)
"$bin" watchlist import --config "$config" --list US-BIS/big --format bis-dpl "$scratch/dpl.txt" | head -n 1
echo "import: $(( ($(date +%s%N) - start) / 1000000 )) ms"

"$bin" serve --config "$config" > "$scratch/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 240); do
  grep -q "screening index built" "$scratch/serve.log" && break
  sleep 0.5
done
grep -o "screening index built.*" "$scratch/serve.log"
for name in "Lemgul Stotelka Brapax 0" "BRAPAX lemgul" "Stotelka, Lemgul"; do
  "$bin" screen --config "$config" --limit 1 "$name" | sed -n 2p
done
grep -E "VmRSS|VmHWM" "/proc/$pid/status"
