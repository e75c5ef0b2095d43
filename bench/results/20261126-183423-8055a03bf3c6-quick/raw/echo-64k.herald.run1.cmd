taskset -c 1 herald bench echo ws://127.0.0.1:19113/ws -c 10 -p 1 -s 65536 --binary -d 2 --warmup 1
