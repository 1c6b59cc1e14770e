// media.js: the camera and microphone, and what a refusal means to a person.

export async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    return { stream: null, error: "insecure", message:
      "This page needs a secure connection (HTTPS) to use your camera and microphone. " +
      "You can still see and hear the others." };
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24 } },
    });
    return { stream, error: null, message: null };
  } catch (err) {
    const name = err?.name ?? "Error";
    const message = name === "NotAllowedError" || name === "SecurityError"
      ? "Camera and microphone access was refused. You can see and hear the others, but they " +
        "cannot see or hear you; allow access in your browser and join again."
      : name === "NotFoundError" || name === "OverconstrainedError"
        ? "No camera or microphone was found. You can see and hear the others."
        : "Your camera or microphone could not be started (it may be in use by another " +
          "application). You can see and hear the others.";
    return { stream: null, error: name === "SecurityError" ? "NotAllowedError" : name, message };
  }
}

export function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}
