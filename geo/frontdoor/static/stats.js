// stats.js: a few numbers from getStats() for the page state (received audio packets, decoded
// frames, what each simulcast layer we publish carries, the kind of ICE candidate in use). No
// addresses are read out.

export async function collectStats(connections) {
  const out = { audioPacketsReceived: 0, videoFramesDecoded: 0, videoFreezeCount: 0,
    videoFreezesDuration: 0, videoByMid: {}, publishLayers: {}, candidateType: null, remoteCandidateType: null };
  for (const pc of connections) {
    if (!pc || pc.connectionState === "closed") continue;
    let report;
    try {
      report = await pc.getStats();
    } catch {
      continue;
    }
    let pairId = null;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") out.audioPacketsReceived += s.packetsReceived ?? 0;
      if (s.type === "inbound-rtp" && s.kind === "video") {
        out.videoFramesDecoded += s.framesDecoded ?? 0;
        out.videoFreezeCount += s.freezeCount ?? 0;
        out.videoFreezesDuration += s.totalFreezesDuration ?? 0;
        if (s.mid != null) {
          out.videoByMid[s.mid] = { framesDecoded: s.framesDecoded ?? 0, freezeCount: s.freezeCount ?? 0,
            freezesDuration: s.totalFreezesDuration ?? 0, frameHeight: s.frameHeight ?? 0 };
        }
      }
      if (s.type === "outbound-rtp" && s.kind === "video" && s.rid) {
        out.publishLayers[s.rid] = { height: s.frameHeight ?? 0, fps: s.framesPerSecond ?? 0,
          bytesSent: s.bytesSent ?? 0, limitation: s.qualityLimitationReason ?? null };
      }
      if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId ? report.get(pairId) : null;
    if (pair) {
      out.candidateType = report.get(pair.localCandidateId)?.candidateType ?? out.candidateType;
      out.remoteCandidateType = report.get(pair.remoteCandidateId)?.candidateType ?? out.remoteCandidateType;
    }
  }
  return out;
}
