// placeholder: the load generator lands here
