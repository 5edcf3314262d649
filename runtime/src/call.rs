//! Calling actions: `async_at`, `post`, `broadcast_action`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use hpx_parcelport::LocalityId;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::action::{run_caught, Action, Registry};
use crate::context::current;
use crate::locality::{Locality, Phase};
use crate::trace;
use crate::{codec, Error, Result};

enum State<T> {
    Ready(Option<Result<T>>),
    Remote {
        reply: oneshot::Receiver<Result<Bytes>>,
        locality: LocalityId,
        /// The caller's locality, which polls for the answer (a future
        /// kept past the job does not keep the locality alive).
        rt: Weak<Locality>,
    },
    Local(JoinHandle<Result<T>>),
}

/// The future result of an action started with [`async_at`]. The call is
/// already under way when this is created (like HPX's `hpx::async`); awaiting
/// it only waits for the result. Dropping it does not cancel the call.
#[must_use = "the call runs anyway; await the future to get its result"]
pub struct ActionFuture<T> {
    state: State<T>,
}

impl<T> ActionFuture<T> {
    fn ready(result: Result<T>) -> Self {
        ActionFuture {
            state: State::Ready(Some(result)),
        }
    }
}

impl<T> std::fmt::Debug for ActionFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Ready(_) => "ready",
            State::Remote { .. } => "remote",
            State::Local(_) => "local",
        };
        f.debug_struct("ActionFuture")
            .field("state", &state)
            .finish()
    }
}

// No field is ever pinned: values of T are only moved out.
impl<T> Unpin for ActionFuture<T> {}

impl<T: serde::de::DeserializeOwned> Future for ActionFuture<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        match &mut this.state {
            State::Ready(value) => Poll::Ready(value.take().unwrap_or(Err(Error::Transport(
                "ActionFuture polled after completion".into(),
            )))),
            State::Remote {
                reply,
                locality,
                rt,
            } => match poll_answer(rt, reply, cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(Ok(bytes))) => Poll::Ready(codec::decode_shared::<T>(&bytes)),
                Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
                Poll::Ready(Err(_)) => Poll::Ready(Err(Error::LocalityLost {
                    locality: *locality,
                    reason: "the runtime shut down before the reply arrived".into(),
                })),
            },
            State::Local(handle) => match Pin::new(handle).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(result)) => Poll::Ready(result),
                Poll::Ready(Err(e)) => Poll::Ready(Err(Error::Transport(format!(
                    "local action task failed: {e}"
                )))),
            },
        }
    }
}

/// Runs action `A` here, catching panics, with errors as a remote call
/// would report them; counted (and traced) as a run of `A` on `rt`.
async fn run_here<A: Action>(rt: Arc<Locality>, args: A::Args) -> Result<A::Output> {
    let started = rt.action_start();
    let (result, waited) = trace::watched(run_caught(rt.here(), A::NAME, A::invoke(args))).await;
    if let Some((index, _)) = Registry::global().find(A::ID) {
        rt.action_ran(index, A::NAME, started, waited);
    }
    result
}

/// Calls `action` with `args` on `locality` and returns the future of its
/// result. The call starts at once. On this locality the action runs on a new
/// task without any encoding; elsewhere the arguments travel as a parcel.
///
/// Errors: the action's own error or panic ([`Error::Remote`],
/// [`Error::RemotePanic`]), [`Error::LocalityLost`] if the locality dies,
/// [`Error::NoSuchLocality`], [`Error::UnknownAction`].
pub fn async_at<A: Action>(
    locality: LocalityId,
    _action: A,
    args: A::Args,
) -> ActionFuture<A::Output> {
    let rt = match current() {
        Ok(rt) => rt,
        Err(e) => return ActionFuture::ready(Err(e)),
    };
    if rt.here() == locality {
        // A call here ends with the job like one elsewhere: an abort fails
        // it with the reason (a remote one fails with its request).
        let here = rt.clone();
        let call = async move {
            let work = run_here::<A>(here, args);
            futures::pin_mut!(work);
            // Most local actions are done at their first poll: only one
            // that waits is raced against the end of the job.
            if let Poll::Ready(result) = futures::poll!(&mut work) {
                return result;
            }
            let Ok(job) = current() else {
                return work.await;
            };
            tokio::select! {
                biased;
                result = &mut work => result,
                end = job.until_end() => Err(match end {
                    Phase::Aborted(reason) => Error::Aborted(reason),
                    _ => Error::Aborted("the job ended during the call".into()),
                }),
            }
        };
        return ActionFuture {
            state: State::Local(rt.spawn_counted(call)),
        };
    }
    if locality.0 >= rt.num_localities() {
        return ActionFuture::ready(Err(Error::NoSuchLocality(locality)));
    }
    let (payload, minted) = match codec::encode_minting(&args, locality) {
        Ok(encoded) => encoded,
        Err(e) => return ActionFuture::ready(Err(e)),
    };
    if !minted.is_empty() {
        // Component handles in the arguments minted credit: the owners
        // record it before the arguments leave.
        let caller = rt.clone();
        return ActionFuture {
            state: State::Local(caller.spawn_counted(async move {
                rt.register_minted(minted).await?;
                match rt.request(locality, A::ID, A::NAME, payload).await {
                    Ok(Ok(bytes)) => codec::decode_shared::<A::Output>(&bytes),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(Error::LocalityLost {
                        locality,
                        reason: "the runtime shut down before the reply arrived".into(),
                    }),
                }
            })),
        };
    }
    ActionFuture {
        state: State::Remote {
            reply: rt.request(locality, A::ID, A::NAME, payload),
            locality,
            rt: Arc::downgrade(&rt),
        },
    }
}

/// Polls for the answer of a request; if it has not come, the caller's
/// thread polls the transport a moment for it ([`Locality::wait_inline`]):
/// a lone round trip then ends right where its answer is read.
fn poll_answer(
    rt: &Weak<Locality>,
    reply: &mut oneshot::Receiver<Result<Bytes>>,
    cx: &mut Context<'_>,
) -> Poll<std::result::Result<Result<Bytes>, oneshot::error::RecvError>> {
    let mut polled = Pin::new(&mut *reply).poll(cx);
    if let (true, Some(rt)) = (polled.is_pending(), rt.upgrade()) {
        rt.wait_inline(|| {
            polled = Pin::new(&mut *reply).poll(cx);
            polled.is_ready()
        });
    }
    polled
}

/// Calls `action` on `locality` without waiting for, or getting, a result
/// (fire and forget). Small posts to one locality are coalesced into few
/// network writes. A failure of the action is logged where it runs.
pub fn post<A: Action>(locality: LocalityId, _action: A, args: A::Args) -> Result<()> {
    let rt = current()?;
    if rt.here() == locality {
        let here = rt.clone();
        rt.spawn_counted(async move {
            if let Err(e) = run_here::<A>(here, args).await {
                tracing::error!(%e, "posted action failed");
            }
        });
        return Ok(());
    }
    if locality.0 >= rt.num_localities() {
        return Err(Error::NoSuchLocality(locality));
    }
    let (payload, minted) = codec::encode_minting(&args, locality)?;
    if minted.is_empty() {
        return rt.post(locality, A::ID, payload);
    }
    let caller = rt.clone();
    caller.spawn_counted(async move {
        let sent = match rt.register_minted(minted).await {
            Ok(()) => rt.post(locality, A::ID, payload),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::error!(%e, "post not sent");
        }
    });
    Ok(())
}

/// The error of action `action` failing here with `message` (used by
/// `#[hpx::action]` for an action's own `Err`).
pub fn action_error(action: &str, message: String) -> Error {
    Error::Remote {
        locality: crate::context::here().unwrap_or_default(),
        action: action.to_owned(),
        message,
    }
}

/// Calls `action` with a copy of `args` on every locality and returns the
/// results in locality order; the first error, if any.
pub async fn broadcast_action<A: Action>(action: A, args: A::Args) -> Result<Vec<A::Output>>
where
    A::Args: Clone,
{
    let n = current()?.num_localities();
    let calls: Vec<_> = (0..n)
        .map(|i| async_at(LocalityId(i), action, args.clone()))
        .collect();
    futures::future::join_all(calls).await.into_iter().collect()
}
