herald bench pubsub ws://127.0.0.1:19306/pubsub -c 1000 --via ws --rate 0 -s 32 -d 5 --warmup 1 --channel bench.cluster
