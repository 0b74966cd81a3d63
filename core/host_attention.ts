// A word other threads set to make the run loop turn the host event loop at once (socket threads that received bytes for the main thread)

/**
 * The process's host-attention word: a thread that posts a message the main thread should
 * handle soon (bytes a monitor or VNC client sent) stores non-zero here after posting.
 * {@linkcode EventLoop.run} looks at it after every CPU slice and, when set, clears it and
 * lets the host event loop deliver the message, so a busy guest answers in about one slice
 * instead of at the next periodic poll.
 */
export const HOST_ATTENTION: SharedArrayBuffer = new SharedArrayBuffer(4);

/** Sets the word through a view of {@linkcode HOST_ATTENTION} (from any thread holding it). */
export function requestHostAttention(word: Int32Array): void {
  Atomics.store(word, 0, 1);
}
