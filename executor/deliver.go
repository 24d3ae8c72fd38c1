package executor

// Event delivery: emit queues events under run.mu; the coordinator takes the
// queue and delivers it with deliver, outside mu, in order.

// emit queues ev for the observers; the coordinator delivers it after
// releasing mu. Called with mu held.
func (r *run) emit(ev Event) {
	if len(r.observers) == 0 {
		return
	}
	ev.RunID = r.id
	r.events = append(r.events, ev)
	r.kick = true
}

// deliver calls the observers with evs, in order. Called without mu.
func (r *run) deliver(evs []Event) {
	for _, ev := range evs {
		for _, o := range r.observers {
			r.deliverOne(o, ev)
		}
	}
}

// notify delivers one event directly (RunStarted and RunFinished, which the
// coordinator emits outside the loop).
func (r *run) notify(ev Event) {
	if len(r.observers) == 0 {
		return
	}
	ev.RunID = r.id
	r.deliver([]Event{ev})
}

func (r *run) deliverOne(o Observer, ev Event) {
	defer func() {
		if v := recover(); v != nil {
			r.e.logger.Error("executor: observer panicked", "run", r.id, "event", ev.Kind.String(), "panic", v)
		}
	}()
	o.OnEvent(ev)
}
