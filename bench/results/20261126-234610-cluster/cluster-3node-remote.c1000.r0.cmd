herald bench pubsub ws://127.0.0.1:19320/pubsub -c 1000 --via ws --rate 0 -s 32 -d 5 --warmup 1 --channel bench.cluster --urls ws://127.0.0.1:19321/pubsub,ws://127.0.0.1:19322/pubsub
