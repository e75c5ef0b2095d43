herald bench pubsub ws://127.0.0.1:19316/pubsub -c 100 --via ws --rate 100 -s 32 -d 5 --warmup 1 --channel bench.cluster --urls ws://127.0.0.1:19317/pubsub,ws://127.0.0.1:19318/pubsub
