package factories

import "log/slog"

func slogDefaultWarn(msg string) { slog.Default().Warn("factories: " + msg) }
