"""A fake pycuda over tests/fakes/fake_device.py's DEVICE, mirroring the calls PyCudaApi makes."""
