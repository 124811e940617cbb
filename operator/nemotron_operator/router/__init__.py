"""The OpenAI gateway: classifies the reasoning mode, applies the pool's policy, picks an
engine endpoint, streams, queues, retries and meters."""
