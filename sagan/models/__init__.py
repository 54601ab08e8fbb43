"""Networks, one module per paper concept. They know nothing about training."""
