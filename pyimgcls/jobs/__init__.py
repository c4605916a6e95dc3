"""Jobs that run a task over many inputs: ``score`` (resumable batch scoring) and ``bench``
(throughput and latency)."""
