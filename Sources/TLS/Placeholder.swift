// placeholder: the TLS engine lands here
