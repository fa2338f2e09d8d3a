"""Tests of the adapters: cameras, gpiozero through its MockFactory, the framebuffer, the simulated
button, the onnxruntime classifier and sd_notify on a real AF_UNIX socket."""
