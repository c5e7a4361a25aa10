package triton

import (
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
)

// resolveEvery is how often the client resolves Triton's address again while
// nothing fails. grpc-go's DNS resolver resolves only when a connection breaks
// (and at most every 30 seconds), so a gateway behind a headless Service would
// never send to Triton replicas added after it connected: a scale-out would
// leave the new GPUs idle until some connection dropped. Lost replicas are
// noticed sooner anyway: their connections fail, which resolves again.
const resolveEvery = 30 * time.Second

// pollingBuilder builds the resolvers of its Builder (grpc's "dns" in
// production) with a goroutine that asks each to resolve again every every.
type pollingBuilder struct {
	resolver.Builder
	every time.Duration
}

// defaultResolver is grpc-go's DNS resolver, polled every resolveEvery.
func defaultResolver() resolver.Builder {
	return pollingBuilder{Builder: resolver.Get("dns"), every: resolveEvery}
}

func (b pollingBuilder) Build(target resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	r, err := b.Builder.Build(target, cc, opts)
	if err != nil {
		return nil, err
	}
	p := &pollingResolver{Resolver: r, stop: make(chan struct{})}
	go p.poll(b.every)
	return p, nil
}

type pollingResolver struct {
	resolver.Resolver
	stop chan struct{}
	once sync.Once
}

func (p *pollingResolver) poll(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			// A request, not a resolution: grpc's DNS resolver resolves in its
			// own goroutine and drops requests that arrive while it is busy.
			p.Resolver.ResolveNow(resolver.ResolveNowOptions{})
		}
	}
}

func (p *pollingResolver) Close() {
	p.once.Do(func() { close(p.stop) })
	p.Resolver.Close()
}
