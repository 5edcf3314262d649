//! Forwarding of child output, line by line, with a per-locality prefix.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// An output sink shared by all forwarding threads; the lock is held for one whole line.
pub(crate) type Sink<W> = Arc<Mutex<W>>;

/// Longest piece of a line forwarded at once; longer lines are forwarded in pieces.
const MAX_CHUNK: u64 = 64 * 1024;

/// After every locality has exited, how long output pipes may stay silent before `hpxrun`
/// stops waiting for them (they are then held open by a background process of the program).
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// The last `Error: ...` line a child wrote (what a failed locality prints last), kept to
/// name the cause of a failure, and whether its standard error has been read to the end.
#[derive(Clone, Default)]
pub(crate) struct LastError(Arc<(Mutex<ErrorStream>, Condvar)>);

#[derive(Default)]
struct ErrorStream {
    line: Option<String>,
    closed: bool,
}

/// Longest error line kept.
const MAX_ERROR_LINE: usize = 500;

impl LastError {
    fn stream(&self) -> std::sync::MutexGuard<'_, ErrorStream> {
        self.0 .0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The line, without `Error: `.
    pub(crate) fn get(&self) -> Option<String> {
        self.stream().line.clone()
    }

    /// Waits up to `timeout` for the stream to be read to its end (the
    /// child has exited, but its last lines may still be in the pipe): the
    /// line is then the child's last.
    pub(crate) fn wait_closed(&self, timeout: Duration) {
        let guard = self.stream();
        let _ = self
            .0
             .1
            .wait_timeout_while(guard, timeout, |s| !s.closed)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Keeps `line` if it is an error line.
    fn see(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        if let Some(rest) = line.trim_end().strip_prefix("Error: ") {
            let cut: String = rest.chars().take(MAX_ERROR_LINE).collect();
            self.stream().line = Some(cut);
        }
    }

    /// The stream has been read to its end.
    fn close(&self) {
        self.stream().closed = true;
        self.0 .1.notify_all();
    }
}

/// Writes one `hpxrun: ...` message line to `sink`, ignoring write errors.
pub(crate) fn message<W: Write>(sink: &Mutex<W>, text: &str) {
    let mut w = sink.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = writeln!(w, "hpxrun: {text}").and_then(|()| w.flush());
}

/// Progress counters shared with the forwarding threads.
#[derive(Default)]
struct Activity {
    /// Number of pieces read so far, by all threads.
    reads: AtomicU64,
    /// Number of threads currently writing to a sink (possibly blocked on a slow reader).
    writing: AtomicUsize,
}

/// The set of threads forwarding the output pipes of a job's children.
pub(crate) struct Forwarders {
    /// One thread per pipe.
    threads: Vec<(String, JoinHandle<()>)>,
    /// Each thread sends its name here when its pipe reached end of file.
    done_tx: Sender<String>,
    /// Receiving end of `done_tx`.
    done_rx: Receiver<String>,
    /// Shared progress counters.
    activity: Arc<Activity>,
}

impl Forwarders {
    /// No threads yet.
    pub(crate) fn new() -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        Self {
            threads: Vec::new(),
            done_tx,
            done_rx,
            activity: Arc::default(),
        }
    }

    /// Starts a thread that copies `source` to `sink` line by line, each line prefixed with
    /// `prefix`, keeping its last error line in `errors`. `name` identifies the pipe in
    /// messages.
    pub(crate) fn spawn<R, W>(
        &mut self,
        name: String,
        source: R,
        prefix: &str,
        sink: &Sink<W>,
        errors: Option<LastError>,
    ) -> io::Result<()>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let prefix = prefix.as_bytes().to_vec();
        let sink = Arc::clone(sink);
        let done = self.done_tx.clone();
        let activity = Arc::clone(&self.activity);
        let thread_name = name.clone();
        let handle = thread::Builder::new()
            .name(format!("hpxrun-{name}"))
            .spawn(move || {
                forward(source, &prefix, &sink, &activity, errors.as_ref());
                let _ = done.send(thread_name);
            })?;
        self.threads.push((name, handle));
        Ok(())
    }

    /// Waits until every pipe reached end of file and its last line was written, then joins
    /// the threads.
    ///
    /// Call it once the children have exited. A pipe that stays open and silent for
    /// [`DRAIN_IDLE`] while no thread is writing is kept open by some background process the
    /// program left behind: `hpxrun` reports it on `err` and stops waiting for it.
    pub(crate) fn finish<E: Write>(self, err: &Mutex<E>) {
        let Self {
            threads,
            done_tx,
            done_rx,
            activity,
        } = self;
        drop(done_tx);
        let mut pending = threads.len();
        let mut last_reads = activity.reads.load(Ordering::SeqCst);
        while pending > 0 {
            match done_rx.recv_timeout(DRAIN_IDLE) {
                Ok(_) => pending -= 1,
                Err(RecvTimeoutError::Timeout) => {
                    let reads = activity.reads.load(Ordering::SeqCst);
                    let writing = activity.writing.load(Ordering::SeqCst);
                    if reads == last_reads && writing == 0 {
                        break;
                    }
                    last_reads = reads;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        for (name, handle) in threads {
            if handle.is_finished() || pending == 0 {
                let _ = handle.join();
            } else {
                message(
                    err,
                    &format!(
                        "{name} is still open after its process exited \
                         (held by a background process?); not waiting for it"
                    ),
                );
            }
        }
    }
}

/// Copies `source` to `sink` line by line until end of file. Lines are written whole under
/// the sink's lock and flushed; a last line without a newline gets one. When the sink fails
/// (e.g. a closed pipe), the rest of the source is read and discarded so the child never
/// blocks on a full pipe.
fn forward<R: Read, W: Write>(
    source: R,
    prefix: &[u8],
    sink: &Mutex<W>,
    activity: &Activity,
    errors: Option<&LastError>,
) {
    let mut reader = BufReader::new(source);
    let mut chunk = Vec::new();
    let mut at_line_start = true;
    let mut sink_ok = true;
    loop {
        chunk.clear();
        match (&mut reader).take(MAX_CHUNK).read_until(b'\n', &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        activity.reads.fetch_add(1, Ordering::SeqCst);
        let complete = chunk.last() == Some(&b'\n');
        if let (Some(errors), true) = (errors, at_line_start) {
            errors.see(&chunk);
        }
        // A piece that is short and has no newline ends the stream: terminate it in the same
        // write so that no other line can be glued to it.
        let last_piece = !complete && (chunk.len() as u64) < MAX_CHUNK;
        if sink_ok {
            let piece_prefix: &[u8] = if at_line_start { prefix } else { &[] };
            activity.writing.fetch_add(1, Ordering::SeqCst);
            sink_ok = write_piece(sink, piece_prefix, &chunk, last_piece).is_ok();
            activity.writing.fetch_sub(1, Ordering::SeqCst);
        }
        at_line_start = complete || last_piece;
    }
    if sink_ok && !at_line_start {
        let _ = write_piece(sink, &[], &[], true);
    }
    if let Some(errors) = errors {
        errors.close();
    }
}

/// Writes `prefix`, `data` and optionally a newline under one lock, then flushes.
fn write_piece<W: Write>(
    sink: &Mutex<W>,
    prefix: &[u8],
    data: &[u8],
    add_newline: bool,
) -> io::Result<()> {
    // One write call per piece: stderr is unbuffered, and a prefix written
    // apart from its line could be split from it by another stream's output.
    let mut piece = Vec::with_capacity(prefix.len() + data.len() + 1);
    piece.extend_from_slice(prefix);
    piece.extend_from_slice(data);
    if add_newline {
        piece.push(b'\n');
    }
    let mut w = sink.lock().unwrap_or_else(PoisonError::into_inner);
    w.write_all(&piece)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward_to_vec(input: &[u8], prefix: &str) -> Vec<u8> {
        let sink = Mutex::new(Vec::new());
        forward(input, prefix.as_bytes(), &sink, &Activity::default(), None);
        sink.into_inner().unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn the_last_error_line_is_kept() {
        let errors = LastError::default();
        let sink = Mutex::new(Vec::new());
        let input = b"Error: first\nnoise\nError: main panicked: boom\ntrailing\n";
        forward(&input[..], b"", &sink, &Activity::default(), Some(&errors));
        assert_eq!(errors.get().as_deref(), Some("main panicked: boom"));
        let started = std::time::Instant::now();
        errors.wait_closed(Duration::from_secs(10));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "closed at the end"
        );
        let open = LastError::default();
        let started = std::time::Instant::now();
        open.wait_closed(Duration::from_millis(50));
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "waited for an open stream"
        );
    }

    #[test]
    fn lines_are_prefixed() {
        assert_eq!(forward_to_vec(b"a\nbb\n", "[L0] "), b"[L0] a\n[L0] bb\n");
    }

    #[test]
    fn last_line_without_newline_is_terminated() {
        assert_eq!(forward_to_vec(b"a\nlast", "[L1] "), b"[L1] a\n[L1] last\n");
        assert_eq!(forward_to_vec(b"", "[L1] "), b"");
    }

    #[test]
    fn empty_lines_and_no_prefix() {
        assert_eq!(forward_to_vec(b"\n\nx\n", ""), b"\n\nx\n");
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        assert_eq!(forward_to_vec(b"\xff\xfe\n", "> "), b"> \xff\xfe\n");
    }

    #[test]
    fn very_long_lines_are_forwarded_in_pieces_with_one_prefix() {
        let size = usize::try_from(MAX_CHUNK).expect("small constant") * 2 + 10;
        let mut input = vec![b'x'; size];
        input.push(b'\n');
        input.extend_from_slice(b"end");
        let mut expected = b"P ".to_vec();
        expected.extend(std::iter::repeat(b'x').take(size));
        expected.extend_from_slice(b"\nP end\n");
        assert_eq!(forward_to_vec(&input, "P "), expected);
        let exact = vec![b'y'; usize::try_from(MAX_CHUNK).expect("small constant")];
        let mut expected = b"P ".to_vec();
        expected.extend_from_slice(&exact);
        expected.push(b'\n');
        assert_eq!(forward_to_vec(&exact, "P "), expected);
    }

    /// A sink that always fails.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failing_sink_still_drains_the_source() {
        let input = b"one\ntwo\nthree\n";
        let mut reader: &[u8] = input;
        forward(
            &mut reader,
            b"",
            &Mutex::new(Broken),
            &Activity::default(),
            None,
        );
        assert!(reader.is_empty());
    }

    #[test]
    fn threads_forward_and_finish() {
        let out: Sink<Vec<u8>> = Arc::default();
        let err = Mutex::new(Vec::new());
        let mut forwarders = Forwarders::new();
        forwarders
            .spawn("a".into(), &b"1\n2"[..], "[A] ", &out, None)
            .expect("thread");
        forwarders.finish(&err);
        let text = out.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(text, b"[A] 1\n[A] 2\n");
        assert!(err.lock().map(|v| v.is_empty()).unwrap_or(false));
    }
}
