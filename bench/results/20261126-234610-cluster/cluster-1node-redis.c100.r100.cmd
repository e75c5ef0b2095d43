herald bench pubsub ws://127.0.0.1:19304/pubsub -c 100 --via ws --rate 100 -s 32 -d 5 --warmup 1 --channel bench.cluster
