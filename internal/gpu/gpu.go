// Package gpu owns the machine's GPUs as transcoderd uses them: it discovers
// them (sysfs, nvidia-smi, the ffmpeg build, the VAAPI driver), proves what each
// can do (a trial encode per device and backend, and the number of encoder
// sessions a device opens at once), keeps encoder sessions as a budget, decides
// per job which rungs run on which backend, and reads ffmpeg's errors to tell
// when a hardware encoder failed so that a job can move the rung to software, or
// fail, as its ladder says. Nothing here falls back silently: every rung placed
// on software although its ladder asked for hardware comes with the reason.
// What a backend is (its ffmpeg encoder, frames, options and filters) is
// internal/encoder's registry, which this package reads.
package gpu
