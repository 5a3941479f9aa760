package api

import (
	"fmt"
	"net/http"
	"strconv"
)

// purgeParam reads the purge query parameter of DELETE /v1/jobs/{id}. Absent
// or false, the job's files stay; true, its folder is deleted with it.
func purgeParam(r *http.Request) (bool, error) {
	vals, ok := r.URL.Query()["purge"]
	if !ok {
		return false, nil
	}
	if len(vals) != 1 {
		return false, fmt.Errorf("purge is given %d times: give it once, true or false", len(vals))
	}
	b, err := strconv.ParseBool(vals[0])
	if err != nil {
		return false, fmt.Errorf("purge must be true or false, not %q", vals[0])
	}
	return b, nil
}
