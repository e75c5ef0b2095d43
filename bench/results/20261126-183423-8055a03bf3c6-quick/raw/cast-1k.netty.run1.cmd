taskset -c 1 herald bench broadcast ws://127.0.0.1:19119/broadcast -c 100 --publishers 1 --rate 0 -s 32 -d 2 --warmup 1
