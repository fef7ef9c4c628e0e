"""jaxnerf: Neural Radiance Fields as pure JAX functions around Flax modules."""
