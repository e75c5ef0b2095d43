taskset -c 1 herald bench broadcast ws://127.0.0.1:19132/broadcast -c 1000 --publishers 1 --rate 10 -s 32 -d 2 --warmup 1 --source-addrs 127.0.0.2-127.0.0.9
