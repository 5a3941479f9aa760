// Package deploy holds how transcoderd is installed, beside the binary: systemd/ has
// the service unit with its sysusers.d and tmpfiles.d snippets, and the Dockerfile at
// the repository root builds the images (targets cpu and nvenc). It has no code. Its
// tests check those files against the project (the Go version of the build stage, the
// flags the variables name, the paths the service may write) and start the real
// daemon with the environment each of them sets.
package deploy
