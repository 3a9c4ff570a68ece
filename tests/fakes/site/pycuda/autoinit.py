"""pycuda.autoinit creates the context; the fake device needs none."""
