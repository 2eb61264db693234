// placeholder: the control plane lands here
