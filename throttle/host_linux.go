package throttle

// defaultHostReader reads the host's procfs and cgroupfs.
func defaultHostReader(opts SamplerOptions) hostReader { return newProcfsReader(opts) }
