package awsemu_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func TestGetCallerIdentityNamesTheSigningUser(t *testing.T) {
	e := start(t)
	out, err := stsClient(e).GetCallerIdentity(ctxT(t), &sts.GetCallerIdentityInput{})
	mustOK(t, err)
	if aws.ToString(out.Account) != "123456789012" || aws.ToString(out.Arn) != "arn:aws:iam::123456789012:user/vigil" ||
		!strings.HasPrefix(aws.ToString(out.UserId), "AIDA") {
		t.Errorf("identity = %s %s %s", aws.ToString(out.Account), aws.ToString(out.Arn), aws.ToString(out.UserId))
	}
	if calls := e.Server.Calls(); len(calls) != 1 || calls[0].Service != "sts" || calls[0].AccessKeyID != akid {
		t.Errorf("calls = %+v", calls)
	}
}

// plain sends an unsigned request and returns the status and body.
func plain(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	mustOK(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	mustOK(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustOK(t, err)
	return resp.StatusCode, string(b)
}

func TestUnsignedRequestsAreRefusedInEachServicesShape(t *testing.T) {
	e := start(t)
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"EC2", http.MethodPost, "/", "Action=DescribeVpcs&Version=2016-11-15", http.StatusUnauthorized,
			"<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message>"},
		{"STS", http.MethodPost, "/", "Action=GetCallerIdentity&Version=2011-06-15", http.StatusForbidden,
			"<Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code><Message>Request is missing Authentication Token</Message></Error>"},
		{"Route 53", http.MethodGet, "/2013-04-01/hostedzone/" + zoneID, "", http.StatusForbidden,
			`<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code><Message>Missing Authentication Token</Message></Error><RequestId>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := plain(t, tt.method, e.Endpoint+tt.path, tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("status %d body %s\nwant status %d and %s", status, body, tt.status, tt.want)
			}
		})
	}
	if got := vipTarget(t, e.Server, "rtb-1"); got != "eni-12345678" {
		t.Error("world changed")
	}
}

func TestAWrongSecretIsSignatureDoesNotMatch(t *testing.T) {
	e := start(t)
	wrong := asUser(akid, "not-the-secret")
	const msg = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	_, err := ec2Client(e, wrong).DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{})
	wantAPIError(t, err, "SignatureDoesNotMatch", msg)
	_, err = stsClient(e, wrong).GetCallerIdentity(ctxT(t), &sts.GetCallerIdentityInput{})
	wantAPIError(t, err, "SignatureDoesNotMatch", msg)
	_, err = r53Client(e, wrong).GetHostedZone(ctxT(t), &route53.GetHostedZoneInput{Id: aws.String(zoneID)})
	wantAPIError(t, err, "SignatureDoesNotMatch", msg)
}

func TestAnUnknownAccessKeyIsRefused(t *testing.T) {
	e := start(t)
	stranger := asUser("AKIDSTRANGER", "whatever")
	_, err := ec2Client(e, stranger).DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{})
	wantAPIError(t, err, "AuthFailure", "AWS was not able to validate the provided access credentials")
	_, err = stsClient(e, stranger).GetCallerIdentity(ctxT(t), &sts.GetCallerIdentityInput{})
	wantAPIError(t, err, "InvalidClientTokenId", "The security token included in the request is invalid.")
	_, err = r53Client(e, stranger).GetHostedZone(ctxT(t), &route53.GetHostedZoneInput{Id: aws.String(zoneID)})
	wantAPIError(t, err, "InvalidClientTokenId", "The security token included in the request is invalid.")
}

func TestATamperedBodyIsSignatureDoesNotMatch(t *testing.T) {
	e := start(t)
	req := signedRequest(t, e, http.MethodPost, "/", "ec2", "Action=DescribeVpcs&Version=2016-11-15")
	req.Body = io.NopCloser(strings.NewReader("Action=DescribeVpcs&Version=2016-11-16")) // same length
	resp, err := http.DefaultClient.Do(req)
	mustOK(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "<Code>SignatureDoesNotMatch</Code>") {
		t.Errorf("status %d body %s", resp.StatusCode, b)
	}
}

func TestASignatureForAnotherRegionOrServiceIsRefused(t *testing.T) {
	e := start(t)
	_, err := ec2Client(e, func(c *aws.Config) { c.Region = "us-west-2" }).DescribeVpcs(ctxT(t), &ec2.DescribeVpcsInput{})
	wantAPIError(t, err, "SignatureDoesNotMatch", "Credential should be scoped to a valid region, not 'us-west-2'. ")
	req := signedRequest(t, e, http.MethodGet, "/2013-04-01/hostedzone/"+zoneID, "ec2", "")
	resp, err := http.DefaultClient.Do(req)
	mustOK(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "Credential should be scoped to correct service: &#39;route53&#39;") {
		t.Errorf("status %d body %s", resp.StatusCode, b)
	}
}

func TestAMalformedAuthorizationHeaderIsIncompleteSignature(t *testing.T) {
	e := start(t)
	req := signedRequest(t, e, http.MethodPost, "/", "ec2", "Action=DescribeVpcs&Version=2016-11-15")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEMUTEST1/20240101/ap-northeast-1/ec2/aws4_request, Signature=00")
	resp, err := http.DefaultClient.Do(req)
	mustOK(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "<Code>IncompleteSignature</Code>") {
		t.Errorf("status %d body %s", resp.StatusCode, b)
	}
}

func TestASignatureMoreThanFifteenMinutesOffIsRefused(t *testing.T) {
	e := start(t)
	tests := []struct {
		method, path, service, body string
		skew                        time.Duration
		code, msg                   string
	}{
		{http.MethodPost, "/", "ec2", "Action=DescribeVpcs&Version=2016-11-15", -20 * time.Minute,
			"RequestExpired", "Request has expired."},
		{http.MethodGet, "/2013-04-01/hostedzone/" + zoneID, "route53", "", -20 * time.Minute,
			"SignatureDoesNotMatch", "Signature expired: "},
		{http.MethodGet, "/2013-04-01/hostedzone/" + zoneID, "route53", "", 20 * time.Minute,
			"SignatureDoesNotMatch", "Signature not yet current: "},
	}
	for _, tt := range tests {
		req := signedRequestAt(t, e, tt.method, tt.path, tt.service, tt.body, time.Now().Add(tt.skew))
		resp, err := http.DefaultClient.Do(req)
		mustOK(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "<Code>"+tt.code+"</Code><Message>"+tt.msg) {
			t.Errorf("%s signed %v off: %d %s", tt.service, tt.skew, resp.StatusCode, b)
		}
	}
}
