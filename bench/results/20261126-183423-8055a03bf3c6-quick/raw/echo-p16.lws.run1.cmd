taskset -c 1 herald bench echo ws://127.0.0.1:19110/ws -c 100 -p 16 -s 32 -d 2 --warmup 1
