taskset -c 1 herald bench idle ws://127.0.0.1:19136/ws -c 1000 --hold 3 --pid 18593 --source-addrs 127.0.0.2-127.0.0.9
