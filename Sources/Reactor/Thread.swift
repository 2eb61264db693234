import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// A joinable OS thread running a closure (the reactor's worker threads).
public final class OSThread {
    private var handle = pthread_t()
    private final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }

    public init(name: String, _ body: @escaping () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&handle, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        _ = portico_set_thread_name(handle, String(name.prefix(15)))
    }

    public func join() { pthread_join(handle, nil) }
}

/// A one-shot signal between threads (a mutex and a condition variable).
public final class Latch {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var count: Int

    public init(count: Int) {
        self.count = count
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }

    public func countDown() {
        pthread_mutex_lock(&mutex)
        count -= 1
        if count <= 0 { pthread_cond_broadcast(&cond) }
        pthread_mutex_unlock(&mutex)
    }

    /// True once the count has reached zero (does not block).
    public var isDone: Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return count <= 0
    }

    public func wait() {
        pthread_mutex_lock(&mutex)
        while count > 0 { pthread_cond_wait(&cond, &mutex) }
        pthread_mutex_unlock(&mutex)
    }
}
