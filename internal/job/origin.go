package job

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/publish"
)

// A job published to a remote origin (--publish http:// or s3://) may resume on a box
// whose output folder lacks its files: in a fleet each box's folder is its own scratch,
// and the box the job ran on before put them at the origin. The index it restores then
// keeps the segments the job folder lacks (the origin has them); the init segment of
// each track's newest run, which the index reads, is fetched from the origin; and the
// publisher is told what is there, so that it never tries to put those files again, and
// deletes them there when they leave the window. After a restart on the same box, the
// files still in the folder are put again (the daemon cannot know which of its last
// uploads got through; a PUT of the same bytes is harmless).

// fetchTimeout bounds the fetch of one init segment from the origin.
const fetchTimeout = 10 * time.Second

// fromOrigin prepares the index about to be restored from segs for a job published
// remotely: segments missing from the folder are kept, and the init segments the
// folder lacks are fetched.
func (r *runner) fromOrigin(segs map[string][]manifest.Segment) {
	if _, local := r.deps.publish.(publish.FS); local {
		return
	}
	r.idx.atOrigin = true
	for _, t := range r.idx.tracks {
		list := segs[t.Name]
		if len(list) == 0 {
			continue
		}
		name := manifest.InitName(list[len(list)-1].Run)
		path := filepath.Join(t.dir, name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		data, err := r.pub.Fetch(ctx, t.Name+"/"+name)
		cancel()
		if err == nil {
			err = os.MkdirAll(t.dir, 0o755)
		}
		if err == nil {
			err = r.fs.WriteAtomic(path, data)
		}
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				r.log.Warn().Err(err).Str("file", t.Name+"/"+name).Msg("fetch the init segment from the origin")
			}
			continue
		}
		r.log.Info().Str("file", t.Name+"/"+name).Msg("init segment fetched from the origin: the job continues what an earlier box published")
	}
}

// knownAtOrigin tells the publisher which files of the restored index the job folder
// lacks: they are at the origin.
func (r *runner) knownAtOrigin() {
	if !r.idx.atOrigin {
		return
	}
	var rels []string
	lacks := func(t *track, name string) {
		if _, err := os.Stat(filepath.Join(t.dir, name)); err != nil {
			rels = append(rels, t.Name+"/"+name)
		}
	}
	for _, t := range r.idx.tracks {
		for _, run := range t.inits {
			lacks(t, manifest.InitName(run))
		}
		for _, s := range t.Segments {
			lacks(t, manifest.SegmentName(s.Run, s.Number))
		}
	}
	if len(rels) > 0 {
		r.pub.Known(rels...)
		r.log.Info().Int("files", len(rels)).Msg("resumed with files that only the origin holds: they are not put again")
	}
}
