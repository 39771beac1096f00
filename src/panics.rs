//! Panics of the libraries segscore reads with, turned into errors: arrow's Parquet decoder
//! panics on some corrupt files, and `tokenizers` on some malformed ones. The quiet panic hook
//! keeps them from stderr and notes where they happened; [`quietly`] catches one on this
//! thread, [`Quiet`] polls a task so that its panic reaches whoever awaits it, where the error
//! that reports it names the file.

thread_local! {
    /// Whether this thread is inside [`quietly`].
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once per process, a panic hook that says nothing about the panics [`quietly`]
/// catches, those in a [`Quiet`] future's polls and those raised in arrow's or parquet's code
/// (noting where, for the error that reports them), and passes every other panic to the hook
/// that was there before. The binary calls it at start, before any other thread exists;
/// [`quietly`] itself never touches the global hook, so it is safe on any number of threads at
/// once.
pub fn install_quiet_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A panic in arrow's or parquet's code is a reader's on a corrupt file wherever it
            // happens (DataFusion reads some files on tasks of its own, which hand the panic
            // on to the task that awaits them): the error that names the file reports it.
            let reader = info.location().is_some_and(|at| in_reader_code(at.file()));
            if QUIET.with(|q| q.get()) || reader {
                if let Some(at) = info.location() {
                    note_quiet_panic(at.to_string());
                }
            } else {
                previous(info);
            }
        }));
    });
}

/// A future polled as [`quietly`] runs its closure: a panic in one of its polls prints
/// nothing (where [`install_quiet_panic_hook`] was called) and reaches whoever awaits the task
/// as a `JoinError` (the error's `from_join` reads its message, and where it was).
/// The job's partitions and the scans that look for an unreadable input run so: arrow's
/// Parquet decoder panics on some corrupt pages, which the job reports as an error naming the
/// file.
pub struct Quiet<F>(pub F);

impl<F: std::future::Future + Unpin> std::future::Future for Quiet<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        /// Puts the thread's flag back, whether the poll returns or unwinds.
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                QUIET.with(|q| q.set(self.0));
            }
        }
        let _restore = Restore(QUIET.with(|q| q.replace(true)));
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Runs `f`, turning a panic into an error with its message. The panic prints nothing where
/// [`install_quiet_panic_hook`] was called; only this thread is affected.
pub fn quietly<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let outer = QUIET.with(|q| q.replace(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(outer));
    out.map_err(|panic| {
        // Its place is not part of this message: forget it.
        take_quiet_panic();
        panic_message(panic.as_ref())
    })
}

/// Whether source file `file` (a panic's place) is arrow's or parquet's code, whose panics
/// are a reader's on a corrupt file.
pub fn in_reader_code(file: &str) -> bool {
    file.contains("/arrow-") || file.contains("/parquet-")
}

/// A panic's message (its payload, a `String` or `&str`), else "the Parquet reader panicked".
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the Parquet reader panicked".into())
}

/// Where the last panic the quiet panic hook kept from stderr happened
/// ([`Quiet`]): the error's `from_join` keeps it with the panic.
static QUIET_PANIC_AT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Where the last panic that printed nothing happened, forgotten once taken.
pub fn take_quiet_panic() -> Option<String> {
    QUIET_PANIC_AT.lock().ok().and_then(|mut at| at.take())
}

/// Records where a panic that printed nothing happened (the quiet panic hook calls it).
fn note_quiet_panic(at: String) {
    if let Ok(mut last) = QUIET_PANIC_AT.lock() {
        *last = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    /// The old `quietly` swapped the process-wide hook for a silent one while it ran, so a
    /// panic on another thread at that moment went unreported.
    #[test]
    fn quietly_silences_only_its_own_thread() {
        static REPORTED: AtomicUsize = AtomicUsize::new(0);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.to_string().contains("quietly-test") {
                REPORTED.fetch_add(1, Ordering::SeqCst);
            } else {
                previous(info);
            }
        }));
        install_quiet_panic_hook();
        let inside = Arc::new(Barrier::new(2));
        let done = Arc::new(Barrier::new(2));
        let (i, d) = (Arc::clone(&inside), Arc::clone(&done));
        let quiet = std::thread::spawn(move || {
            quietly(|| {
                i.wait(); // the other thread panics while this one is inside quietly
                d.wait();
                panic!("quietly-test: caught")
            })
        });
        inside.wait();
        let loud = std::thread::spawn(|| panic!("quietly-test: reported"));
        assert!(loud.join().is_err());
        done.wait();
        assert_eq!(quiet.join().unwrap().unwrap_err(), "quietly-test: caught");
        assert_eq!(
            REPORTED.load(Ordering::SeqCst),
            1,
            "the other thread's panic was reported, the caught one was not"
        );
        // A `Quiet` future's panic is silent too (one test: the hook is the process's), and
        // reaches the task's caller with its message and place.
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let joined = rt.block_on(async {
            tokio::spawn(Quiet(Box::pin(async {
                if QUIET.with(|q| q.get()) {
                    panic!("quietly-test: a quiet future");
                }
                1
            })))
            .await
        });
        let panic = joined.unwrap_err().try_into_panic().unwrap();
        assert_eq!(panic_message(panic.as_ref()), "quietly-test: a quiet future");
        let at = take_quiet_panic().expect("the hook noted where");
        assert!(at.starts_with("src/panics.rs:"), "{at}");
        assert_eq!(
            REPORTED.load(Ordering::SeqCst),
            1,
            "the quiet future's panic was not reported"
        );
        // The flag is put back on the thread that polled, though the poll unwound.
        assert!(!QUIET.with(|q| q.get()));
        assert_eq!(rt.block_on(Quiet(Box::pin(async { 2 }))), 2);
    }
}
