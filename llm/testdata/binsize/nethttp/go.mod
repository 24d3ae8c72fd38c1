module binsize/nethttp

go 1.26.0
