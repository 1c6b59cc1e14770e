// stats.js: a few numbers from getStats() for the page state (received audio packets, decoded
// frames, the kind of ICE candidate in use). No addresses are read out.

export async function collectStats(connections) {
  const out = { audioPacketsReceived: 0, videoFramesDecoded: 0, videoFreezeCount: 0,
    videoFreezesDuration: 0, candidateType: null, remoteCandidateType: null };
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
