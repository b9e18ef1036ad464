package awsemu

import (
	"encoding/xml"
	"net/http"
	"strings"
)

type getCallerIdentityResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

// serveSTS answers an STS Query request; it returns the error to write, or
// nil once it wrote the answer.
func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request, body []byte, q query, reqID string, rec *CallRecord) *apiError {
	cred, e := s.admit(r, body, "sts", rec.Action, false, rec)
	if e != nil {
		return e
	}
	switch rec.Action {
	case "":
		return newError(http.StatusBadRequest, "MissingAction", "Missing Action")
	case "GetCallerIdentity":
	default:
		return newError(http.StatusBadRequest, "InvalidAction", "Could not find operation %s for version %s", rec.Action, stsVersion)
	}
	if e := q.check(nil); e != nil {
		return e
	}
	user := cred.User
	if user == "" {
		user = "emu-user"
	}
	var resp getCallerIdentityResponse
	resp.Xmlns = "https://sts.amazonaws.com/doc/" + stsVersion + "/"
	resp.Result.Arn = "arn:aws:iam::" + Account + ":user/" + user
	resp.Result.UserID = "AIDA" + strings.ToUpper(hexHash(cred.AccessKeyID, 17))
	resp.Result.Account = Account
	resp.RequestID = reqID
	writeXML(w, http.StatusOK, reqID, resp)
	return nil
}
