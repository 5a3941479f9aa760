package job

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Errors of the limits; each is wrapped with the details.
var (
	ErrLimit       = errors.New("over a limit")  // 422: the ladder asks for more than the daemon allows
	ErrTooManyJobs = errors.New("too many jobs") // 429: try again when a job has ended
)

// Limits bound what one request can make the daemon do. They are checked when a
// job is created, before any process starts; a zero field is not checked.
type Limits struct {
	MaxJobs       int           // jobs that have not ended, queued ones included
	MaxRenditions int           // video plus audio renditions of the ladder
	MaxHeight     int           // height of any video rung, in pixels
	MaxBitrate    int64         // bitrate (and maxrate) of any rendition, bits per second
	MaxWindow     time.Duration // time-shift window of a live job; window 0 (keep every segment) exceeds it
}

// checkLadder reports, at once, every way l exceeds the limits for a job
// that is live or not.
func (lim Limits) checkLadder(l *ladder.Ladder, live bool) error {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if n := len(l.Video.Renditions) + len(l.Audio); lim.MaxRenditions > 0 && n > lim.MaxRenditions {
		bad("%d renditions, the limit is %d (max-renditions)", n, lim.MaxRenditions)
	}
	for i, r := range l.Video.Renditions {
		where := fmt.Sprintf("video.renditions[%d] (%s)", i, r.Name)
		if lim.MaxHeight > 0 && r.Height > lim.MaxHeight {
			bad("%s: height %d is above the limit of %d (max-height)", where, r.Height, lim.MaxHeight)
		}
		if peak := max(r.Bitrate, r.MaxRate); lim.MaxBitrate > 0 && peak > lim.MaxBitrate {
			bad("%s: %s is above the limit of %s (max-bitrate)", where, ladder.FormatBitrate(peak), ladder.FormatBitrate(lim.MaxBitrate))
		}
	}
	for i, a := range l.Audio {
		if lim.MaxBitrate > 0 && a.Bitrate > lim.MaxBitrate {
			bad("audio[%d] (%s): %s is above the limit of %s (max-bitrate)", i, a.Name, ladder.FormatBitrate(a.Bitrate), ladder.FormatBitrate(lim.MaxBitrate))
		}
	}
	if live && lim.MaxWindow > 0 {
		switch {
		case l.Window == 0:
			bad("window 0 keeps every segment of a live stream for ever: use a window of at most %s (max-window)", lim.MaxWindow)
		case l.Window > lim.MaxWindow:
			bad("window %s is above the limit of %s (max-window)", l.Window, lim.MaxWindow)
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: ladder %q: %s", ErrLimit, l.Name, strings.Join(probs, "; "))
}

// checkJobs refuses a new job when MaxJobs jobs have not ended, queued ones included:
// the limit bounds what the daemon holds. m.mu must be held.
func (lim Limits) checkJobs(jobs map[string]*Job) error {
	if lim.MaxJobs <= 0 {
		return nil
	}
	active := 0
	for _, j := range jobs {
		if !j.state().Ended() {
			active++
		}
	}
	if active >= lim.MaxJobs {
		return fmt.Errorf("%w: %d jobs are running or queued, the limit is %d (max-jobs): stop one first", ErrTooManyJobs, active, lim.MaxJobs)
	}
	return nil
}

// checkJobDir refuses a job folder that transcoderd would not write into: a
// symbolic link (it could point anywhere) or anything but a folder. A folder
// that does not exist yet is fine.
func checkJobDir(dir string) error {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("job folder: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: output folder %s is a symbolic link: jobs write only into real folders under the output folder", ErrConflict, dir)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s exists and is not a folder", ErrConflict, dir)
	}
	return nil
}

// purgeTimeout bounds how long a purge retries deleting the job's files at the origin.
const purgeTimeout = 20 * time.Second

// Purge stops the job if it has not ended, waits for its ffmpeg to exit, deletes its
// files at the origin (--publish), then its folder under the output folder, and
// forgets the job. It deletes nothing else: the folder is <output>/<id>, and a
// symbolic link there is refused, not followed. When the origin fails for
// purgeTimeout, the job stays, ended, for another purge.
func (m *Manager) Purge(ctx context.Context, id string) (View, error) {
	j, err := m.Get(id)
	if err != nil {
		return View{}, err
	}
	j.stop(nil)
	select {
	case <-j.done:
	case <-ctx.Done():
		return j.View(), ctx.Err()
	}
	dir := filepath.Join(m.cfg.Output, id)
	if filepath.Dir(dir) != filepath.Clean(m.cfg.Output) || !ladder.ValidName(id) {
		return j.View(), fmt.Errorf("%w: job id %q", ErrInvalid, id) // cannot happen: ids are checked at creation
	}
	if err := checkJobDir(dir); err != nil {
		return j.View(), err
	}
	j.stopExport("", errClipDeleted)
	pctx, cancel := context.WithTimeout(ctx, purgeTimeout)
	defer cancel()
	if err := m.cfg.Publish.Job(id, dir, j.log).Purge(pctx); err != nil {
		return j.View(), fmt.Errorf("delete the job's files at the origin: %w", err)
	}
	// While the job is still listed no new job can take its id and folder.
	if err := os.RemoveAll(dir); err != nil {
		return j.View(), fmt.Errorf("delete job folder: %w", err)
	}
	j.log.Info().Str("dir", dir).Msg("job folder deleted")
	return m.Stop(ctx, id) // the job has ended: this forgets it
}
